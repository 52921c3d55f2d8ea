"""The package's lazy public API (`import digitlab as dl`)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_evaluate_stays_the_function_after_the_subpackage_loads():
    # A fresh interpreter: the subpackage binding happens once, when digitlab.evaluate first loads.
    code = (
        "import numpy as np\n"
        "import digitlab as dl\n"
        "import digitlab.evaluate.metrics\n"
        "from digitlab.evaluate import crossval\n"
        "model = dl.build_model('mlp')\n"
        "x = np.zeros((8, 28, 28), np.uint8); y = np.arange(8) % 10\n"
        "dl.predict_proba(model, x)\n"
        "scores = dl.evaluate(model, x, y)\n"
        "print(type(dl.evaluate).__name__, 0.0 <= scores['accuracy'] <= 1.0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["function", "True"]


def test_subpackage_modules_stay_importable():
    import digitlab as dl
    from digitlab.evaluate import metrics

    assert dl.evaluate is metrics.evaluate
    assert sys.modules["digitlab.evaluate"].__name__ == "digitlab.evaluate"


def test_unknown_attribute_is_an_attribute_error():
    import digitlab as dl

    with pytest.raises(AttributeError, match="no_such_thing"):
        dl.no_such_thing


def test_every_public_name_resolves_and_the_config_groups_build_a_config():
    import digitlab as dl

    for name in dl.__all__:
        assert getattr(dl, name) is not None, name
    config = dl.TrainConfig(epochs=2, optimizer=dl.OptimizerConfig("adam", lr=3e-4),
                            regularisation=dl.RegularisationConfig(label_smoothing=0.1))
    assert config == dl.TrainConfig.from_flat(epochs=2, optimizer="adam", lr=3e-4, label_smoothing=0.1)
