"""Per-fold files of a cross-validation run, so that `cv --resume` can skip finished folds.

    OUT/folds/fold-01.json         scores, history, timings, pid/node and the task's key
    OUT/folds/fold-01-proba.npy    float32 (n_test, C) softmax of the fold's test images
    OUT/folds/fold-01-history.csv  the fold's learning curves

Each file is written atomically when its fold completes, the JSON last: a fold counts as done only
when its JSON exists and its key matches the task (same model, settings and split indices), so a crash
mid-fold, or a changed setting, never lets a stale score through.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from digitlab.errors import ConfigError
from digitlab.evaluate.folds import FoldResult
from digitlab.files import read_json, write_bytes, write_json
from digitlab.train.history import History

FOLD_DIR = "folds"


def _stem(fold: int) -> str:
    return f"fold-{fold + 1:02d}"  # 1-based on disk, as people count folds


# Settings newer than the fold stores in use, with their "off" default.
ADDED_SETTINGS = {"blend_start": 0.0}


def task_key(task, reuse_model: bool) -> str:
    """A hash of everything that determines a fold's result: model, settings, protocol and indices.

    The settings go in by their flat names (TrainConfig.to_flat), which stores written before the
    groups also used, so their folds stay valid. Settings added since (ADDED_SETTINGS) go in only when
    set away from their default, for the same reason."""
    config = {name: value for name, value in task.config.to_flat().items()
              if not (name in ADDED_SETTINGS and value == ADDED_SETTINGS[name])}
    payload = json.dumps({
        "model": task.model_name, "model_kwargs": task.model_kwargs, "config": config,
        "reuse_model": bool(reuse_model),
        "train_idx": hashlib.sha256(np.ascontiguousarray(task.train_idx, dtype=np.int64).tobytes()).hexdigest(),
        "test_idx": hashlib.sha256(np.ascontiguousarray(task.test_idx, dtype=np.int64).tobytes()).hexdigest(),
    }, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def save_fold(out: Path, result, key: str) -> None:
    """Write the fold's probabilities, history and JSON (the JSON last: it marks the fold as done)."""
    folder = Path(out) / FOLD_DIR
    stem = _stem(result.fold)
    extra = dict(result.extra)
    proba = extra.pop("test_proba", None)
    if proba is not None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(proba, dtype=np.float32))
        write_bytes(folder / f"{stem}-proba.npy", buf.getvalue())
    History({k: list(v) for k, v in result.history.items()}).to_csv(folder / f"{stem}-history.csv")
    write_json(folder / f"{stem}.json", {
        "fold": result.fold, "accuracy": result.accuracy, "loss": result.loss, "history": result.history,
        "train_time_s": result.train_time_s, "n_train": result.n_train, "n_test": result.n_test,
        "node_id": result.node_id, "pid": result.pid, "extra": extra, "task_key": key,
    })


def load_folds(out: Path, keys: dict[int, str]) -> dict:
    """The saved FoldResults of `out` whose keys match `keys` ({fold: task_key}).

    A saved fold made with other settings is a ConfigError: resuming would mix two experiments.
    """
    folder = Path(out) / FOLD_DIR
    done = {}
    for fold, key in keys.items():
        path = folder / f"{_stem(fold)}.json"
        if not path.exists():
            continue
        saved = read_json(path, what="saved fold")
        if saved.get("task_key") != key:
            raise ConfigError(f"{path} was made with other settings (model, training settings, folds or seed): "
                              f"rerun without --resume, or use another output folder")
        proba_path = folder / f"{_stem(fold)}-proba.npy"
        if not proba_path.exists():
            continue  # the fold's JSON landed but its predictions did not: run the fold again
        extra = dict(saved.get("extra") or {})
        extra["test_proba"] = np.load(proba_path, allow_pickle=False)
        done[fold] = FoldResult(
            fold=fold, accuracy=float(saved["accuracy"]), loss=float(saved["loss"]), history=saved["history"],
            train_time_s=float(saved["train_time_s"]), n_train=int(saved["n_train"]), n_test=int(saved["n_test"]),
            node_id=saved.get("node_id"), pid=saved.get("pid"), extra=extra,
        )
    return done


def clear_folds(out: Path) -> None:
    """Remove the per-fold files of an earlier run in `out` (a fresh run must not inherit them)."""
    folder = Path(out) / FOLD_DIR
    if not folder.is_dir():
        return
    for path in folder.glob("fold-*"):
        if path.is_file():
            path.unlink()
