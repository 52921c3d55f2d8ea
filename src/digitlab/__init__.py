"""digitlab: handwritten digit recognition, from the Keras MNIST tutorial to a served CNN.

The public API is loaded lazily so that `import digitlab` (and `digitlab --help`) stay fast and do
not import torch:

    import digitlab as dl
    data = dl.load_dataset("mnist")                 # uint8 images (N, 28, 28), int64 labels (N,)
    model = dl.build_model("mlp")                   # the article's Dense(512) -> Dense(10)
    history = dl.fit(model, data.x_train, data.y_train, dl.TrainConfig(epochs=5, batch_size=128),
                     validation_data=(data.x_test, data.y_test))
    print(dl.evaluate(model, data.x_test, data.y_test))
    dl.save_model(model, "runs/mlp", history=history)
    model = dl.load_model("runs/mlp")
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.2.0"

# name -> module that defines it. Resolved on first access (PEP 562).
_LAZY = {
    "load_dataset": "digitlab.data.dataset",
    "Dataset": "digitlab.data.dataset",
    "DATASETS": "digitlab.data.sources",
    "build_model": "digitlab.models.registry",
    "list_models": "digitlab.models.registry",
    "model_summary": "digitlab.models.summary",
    "save_model": "digitlab.models.storage",
    "load_model": "digitlab.models.storage",
    "TrainConfig": "digitlab.train.config",
    "OptimizerConfig": "digitlab.train.config",
    "ScheduleConfig": "digitlab.train.config",
    "AugmentationConfig": "digitlab.train.config",
    "RegularisationConfig": "digitlab.train.config",
    "RuntimeConfig": "digitlab.train.config",
    "fit": "digitlab.train.loop",
    "History": "digitlab.train.history",
    "evaluate": "digitlab.evaluate.metrics",
    "predict_proba": "digitlab.evaluate.metrics",
    "cross_validate": "digitlab.evaluate.crossval",
    "predict_logits": "digitlab.train.predict",
    "calibrate": "digitlab.workflows.calibrate",
    "Recognizer": "digitlab.inference.recognizer",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'digitlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


class _Package(types.ModuleType):
    """The digitlab module, whose `evaluate` stays the function after `digitlab.evaluate` loads.

    Importing a subpackage binds it on its parent (`digitlab.evaluate = <module>`), which would
    shadow the public `dl.evaluate(model, x, y)`. That binding is skipped here; the subpackage
    stays reachable through sys.modules, so `from digitlab.evaluate import metrics` and
    `from digitlab.evaluate.metrics import evaluate` work. The spelling
    `import digitlab.evaluate.metrics as m` does not (it walks the attribute): use `from ... import`.
    """

    def __setattr__(self, name: str, value) -> None:
        if name == "evaluate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
