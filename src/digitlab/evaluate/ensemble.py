"""Ensembles: average the members' softmax outputs, and score members and ensemble side by side.

An ensemble of N runs predicts `argmax(mean_i softmax_i(x))`, the plain average of probabilities
used by the MNIST committees (MCDNN, DropConnect). Members are ordinary run folders, so any saved
models of the same classes can be combined (digitlab.workflows.ensemble trains N seeds of one preset).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from digitlab.errors import ConfigError
from digitlab.evaluate.metrics import predict_proba, scores_from_proba
from digitlab.evaluate.tta import check_policy
from digitlab.files import ensure_dir, write_json
from digitlab.models.storage import load_model
from digitlab.provenance import environment

RESULT_NAME = "ensemble.json"


def average_proba(probas: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of K arrays float (N, C) of probabilities -> float32 (N, C). Pure."""
    if not probas:
        raise ConfigError("an ensemble needs at least one member")
    shapes = {p.shape for p in probas}
    if len(shapes) != 1:
        raise ConfigError(f"members disagree on the output shape: {sorted(shapes)}; they must share the classes")
    return np.mean(np.stack(probas), axis=0, dtype=np.float64).astype(np.float32)


def load_members(paths: Sequence[str | Path], device: str = "cpu") -> list:
    """Load each run folder (or model file) as an eval-mode model; all must share the class names."""
    if len(paths) < 2:
        raise ConfigError(f"an ensemble needs at least 2 runs, got {len(paths)}: give more run folders")
    models = [load_model(p, device=device) for p in paths]
    classes = {tuple(m.digitlab_meta.get("classes") or ()) for m in models}
    if len(classes) != 1:
        raise ConfigError("the runs were trained on different classes: an ensemble needs the same dataset for all")
    return models


def score_ensemble(models: Sequence, x: np.ndarray, y: np.ndarray, classes=None, names=None,
                   tta: str | None = None) -> dict:
    """Members' and the ensemble's test scores.

    x: uint8 (N, 28, 28) images; y: int (N,) labels. Returns {"members": [...], "ensemble": {...},
    "mean_member_accuracy", "best_member_accuracy", "gain_over_mean", "tta"}; accuracies are fractions in
    [0, 1]. tta: a test-time augmentation policy applied to every member (digitlab.evaluate.tta).
    """
    names = list(names) if names is not None else [f"member-{i}" for i in range(len(models))]
    probas, members = [], []
    for name, model in zip(names, models):
        proba = predict_proba(model, x, tta=tta)
        scores = scores_from_proba(proba, y, classes)
        meta = getattr(model, "digitlab_meta", {}) or {}
        members.append({
            "run": str(name),
            "model": (meta.get("architecture") or {}).get("name"),
            "seed": meta.get("seed"),
            "preset": meta.get("preset"),
            "num_params": meta.get("num_params"),
            "test_accuracy": scores["accuracy"],
            "test_loss": scores["loss"],
            "errors": scores["errors"],
            "recorded_test_accuracy": (meta.get("metrics") or {}).get("test_accuracy"),
            "train_time_s": (meta.get("metrics") or {}).get("train_time_s"),
        })
        probas.append(proba)
    ens = scores_from_proba(average_proba(probas), y, classes)
    accs = [m["test_accuracy"] for m in members]
    return {
        "n_members": len(members),
        "members": members,
        "ensemble": {k: ens[k] for k in ("accuracy", "loss", "errors", "n", "per_class_accuracy")},
        "mean_member_accuracy": float(np.mean(accs)),
        "best_member_accuracy": float(np.max(accs)),
        "gain_over_mean": float(ens["accuracy"] - np.mean(accs)),
        "tta": tta or "none",
    }


def evaluate_ensemble(paths: Sequence[str | Path], data, output: str | Path | None = None,
                      device: str = "cpu", extra: dict | None = None, tta: str | None = None) -> dict:
    """Score the runs in `paths` and their average on `data`'s test set; write OUTPUT/ensemble.json."""
    tta = check_policy(tta)  # before loading anything: a typo costs nothing
    started = time.perf_counter()
    models = load_members(paths, device=device)
    for path, model in zip(paths, models):
        trained_on = (model.digitlab_meta.get("metrics") or {}).get("dataset")
        if trained_on and trained_on != data.name:
            raise ConfigError(f"{path} was trained on {trained_on}, not {data.name}: pass --dataset {trained_on}")
    result = score_ensemble(models, data.x_test, data.y_test, data.classes, names=[str(p) for p in paths],
                            tta=tta)
    result.update({"dataset": data.name, "eval_time_s": round(time.perf_counter() - started, 3),
                   "environment": environment(device), **(extra or {})})
    if output is not None:
        write_json(ensure_dir(output) / RESULT_NAME, result)
    return result

