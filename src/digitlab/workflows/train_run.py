"""One training run from start to finish: build, fit, test, save. The CLI's `train` and other
commands (reproduce, ensemble, sweep) call this, so a run folder always looks the same:

    RUN_DIR/model.safetensors   weights (no pickle)
    RUN_DIR/model.json          architecture, config, preprocessing, metrics, versions, seed
    RUN_DIR/history.csv         per-epoch loss/accuracy (and val_ when there is validation data)
    RUN_DIR/learning_curves.png the two-panel plot
    RUN_DIR/metrics.json        test metrics, timings and provenance
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from digitlab.errors import ConfigError
from digitlab.evaluate.metrics import evaluate
from digitlab.files import save_figure, write_json
from digitlab.models.registry import build_model
from digitlab.models.storage import save_model
from digitlab.provenance import environment
from digitlab.train.config import TrainConfig
from digitlab.train.device import resolve_device, seed_everything
from digitlab.train.distill import teacher_provenance
from digitlab.train.initial import initial_model
from digitlab.train.loop import fit
from digitlab.viz.curves import learning_curves_figure


@dataclass
class RunResult:
    model: object
    history: dict
    metrics: dict
    output: Path | None


def train_run(
    model_name: str,
    config: TrainConfig,
    data,
    output: str | Path | None = None,
    *,
    model_kwargs: dict | None = None,
    callbacks=(),
    verbose: bool = True,
    validate_on_test: bool = False,
    preset: str | None = None,
    start_from: str | None = None,
) -> RunResult:
    """Train `model_name` on `data` (a digitlab Dataset) and, if `output` is given, save the run.

    validate_on_test: use the test set as validation data each epoch, as the article does for its
    learning curves. Off by default: choosing settings on the test set is how test scores get inflated.
    start_from: fine-tune the saved model at this path ("pretrained": the shipped one) instead of fresh
    weights; its architecture replaces model_name/model_kwargs, and the run records where it started.
    """
    seed_everything(config.seed)  # the initial weights depend on it
    if config.regularisation.blend_start and start_from is None:
        raise ConfigError("blend-start (from --blend-start or the preset) blends the weights back toward the model "
                          "training started from: give it with --from RUN or --pretrained")
    started_from = None
    if start_from is not None:
        model, started_from = initial_model(start_from)
        model_name = started_from["architecture"]["name"]
    else:
        model = build_model(model_name, **(model_kwargs or {}))
    if validate_on_test and config.val_split:
        validate_on_test = False  # a carved validation split takes precedence
    teacher = None
    if config.regularisation.teacher:
        teacher = teacher_provenance(config.regularisation.teacher, dataset=data.name)  # checked before any training
    started = time.perf_counter()
    history = fit(
        model, data.x_train, data.y_train, config,
        validation_data=(data.x_test, data.y_test) if validate_on_test else None,
        callbacks=callbacks, verbose=verbose,
    )
    train_time = time.perf_counter() - started
    test = evaluate(model, data.x_test, data.y_test, classes=data.classes)
    device = resolve_device(config.runtime.device)
    metrics = {
        "dataset": data.name,
        "model": model_name,
        "preset": preset,
        "seed": config.seed,
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "train_loss": history.last("loss"),
        "train_accuracy": history.last("accuracy"),
        "epochs_run": history.epochs,
        "train_time_s": round(train_time, 3),
        "per_class_accuracy": test["per_class_accuracy"],
        "environment": environment(str(device)),
        "torch_threads": torch.get_num_threads(),
    }
    if teacher is not None:
        metrics["teacher"] = teacher
    if started_from is not None:
        metrics["started_from"] = started_from
    out = None
    if output is not None:
        out = save_run(output, model, history, metrics, config, data)
    return RunResult(model, history, metrics, out)


def save_run(output, model, history, metrics, config, data) -> Path:
    out = save_model(
        model, output, history=history, train_config=config, classes=data.classes,
        metrics={k: metrics[k] for k in ("test_loss", "test_accuracy", "train_loss", "train_accuracy",
                                          "train_time_s", "dataset", "epochs_run")},
        extra={"seed": config.seed, "preset": metrics.get("preset"), "environment": metrics["environment"],
               **({"teacher": metrics["teacher"]} if "teacher" in metrics else {}),
               **({"started_from": metrics["started_from"]} if "started_from" in metrics else {})},
    )
    history.to_csv(out / "history.csv")
    title = f"{metrics['model']} on {data.name}"
    val_label = "validation" if config.val_split else "test"
    save_figure(learning_curves_figure(history, title=title, val_label=val_label), out / "learning_curves.png")
    write_json(out / "metrics.json", {**metrics, "config": config.to_dict()})
    return out
