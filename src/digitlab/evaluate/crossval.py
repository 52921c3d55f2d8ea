"""k-fold cross-validation done right: a fresh model and optimizer in every fold.

The article's code builds one network and calls `fit` on it in every fold, so from the second fold on
the model has already trained on that fold's test images and scores above 99%: leakage, not an
estimate. Here every fold is an independent `FoldTask` that `run_fold` turns into a `FoldResult`, so
the folds can run anywhere (one after another with `LocalExecutor`, or on a Ray cluster) and the scores
depend only on the tasks, never on the order they ran in. `reuse_model=True` reproduces the article's
leaky protocol on purpose; it is sequential by nature and labelled as leaking everywhere.

Seeds: the split seed (`seed`) gives scikit-learn's KFold/StratifiedKFold indices; fold k trains with
`config.seed + k` (model initialisation, shuffling, dropout), so folds differ in their initial weights
as Keras's fresh models would, and each fold is reproducible by itself.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from digitlab.errors import ConfigError
from digitlab.evaluate import cv_store
from digitlab.evaluate.folds import FoldResult, FoldTask, make_splits
from digitlab.models.registry import build_model
from digitlab.train.config import TrainConfig
from digitlab.train.device import resolve_device, seed_everything
from digitlab.train.loop import fit
from digitlab.train.predict import predict_logits
from digitlab.train.tensors import to_input_tensor, to_label_tensor


def weights_fingerprint(model) -> str:
    """SHA-256 of every tensor in the model's state dict (names and bytes), for identity checks."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _take(array, idx: np.ndarray):
    if isinstance(array, torch.Tensor):
        return array[torch.from_numpy(idx)]
    return array[idx]  # fancy indexing: one copy of the fold's images, sliced once


def _score(model, x_t, y_t, config: TrainConfig) -> tuple[np.ndarray, float, float]:
    """Softmax, mean cross-entropy and accuracy on prepared tensors, in big eval batches (float32 on a
    CPU: these are the fold's reported scores)."""
    amp = config.runtime.amp and x_t.device.type == "cuda"
    logits = predict_logits(model, x_t, config.runtime.eval_batch_size, x_t.device, amp=amp)
    loss = float(F.cross_entropy(logits, y_t))
    accuracy = int((logits.argmax(1) == y_t).sum()) / len(y_t)
    return torch.softmax(logits, dim=1).cpu().numpy(), loss, accuracy


def train_fold(model, task: FoldTask, x, y) -> FoldResult:
    """Fit `model` (fresh or not: the caller decides) on the fold's training part, score its test part."""
    device = resolve_device(task.config.runtime.device)
    x_train, y_train = _take(x, task.train_idx), _take(y, task.train_idx)
    # The test fold becomes tensors once: fit validates on them every epoch and we score them after.
    x_test = to_input_tensor(_take(x, task.test_idx), device)
    y_test = to_label_tensor(_take(y, task.test_idx), device)
    extra: dict = {}
    if task.record_weights:
        extra["weights_first_batch"] = weights_fingerprint(model)
    started = time.perf_counter()
    history = fit(model, x_train, y_train, task.config, validation_data=(x_test, y_test), verbose=False)
    train_time = time.perf_counter() - started
    if task.record_weights:
        extra["weights_final"] = weights_fingerprint(model)
    proba, loss, accuracy = _score(model, x_test, y_test, task.config)
    extra["test_proba"] = proba
    return FoldResult(
        fold=task.fold, accuracy=accuracy, loss=loss, history={k: list(v) for k, v in history.items()},
        train_time_s=train_time, n_train=len(task.train_idx), n_test=len(task.test_idx),
        pid=os.getpid(), extra=extra,
    )


def run_fold(task: FoldTask, x, y) -> FoldResult:
    """One independent fold: a FRESH model (seeded with task.config.seed) and a fresh optimizer.

    x: uint8 (N, 28, 28) images of the whole CV pool (numpy or tensor); y: int64 labels (N,).
    Pure: the result depends only on the task and the data (module level, so Ray can ship it).
    """
    seed_everything(task.config.seed)
    model = build_model(task.model_name, **task.model_kwargs)
    return train_fold(model, task, x, y)


class LocalExecutor:
    """Runs the folds one after another in this process."""

    name = "local"

    def map(self, tasks: Sequence[FoldTask], x, y,
            on_result: Callable[[FoldResult], None] | None = None) -> list[FoldResult]:
        results = []
        for task in tasks:
            result = run_fold(task, x, y)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results


def _run_reusing_model(tasks: Sequence[FoldTask], x, y, on_result) -> list[FoldResult]:
    """The article's protocol: ONE network, trained on in every fold (leaks from fold 2 on)."""
    seed_everything(tasks[0].config.seed)
    model = build_model(tasks[0].model_name, **tasks[0].model_kwargs)
    results = []
    for task in tasks:
        result = train_fold(model, task, x, y)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


@dataclass
class CVResult:
    model_name: str
    model_kwargs: dict
    config: TrainConfig
    splits: list  # [(train_idx, test_idx)] int64, one pair per fold
    folds: list  # [FoldResult], sorted by fold
    split_seed: int
    stratified: bool
    reuse_model: bool  # True: the article's leaky protocol, scores are NOT estimates
    executor: str
    wall_time_s: float
    resumed: list = field(default_factory=list)  # folds loaded from a previous run's files
    output: Path | None = None

    @property
    def scores(self) -> np.ndarray:
        """Fold accuracies in [0, 1], float64 (k,)."""
        return np.array([f.accuracy for f in self.folds], dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def std(self) -> float:
        return float(self.scores.std())  # ddof=0, as the article's numpy std

    def oof_proba(self) -> np.ndarray:
        """Out-of-fold softmax, float32 (N, C): row i comes from the fold whose test part holds i."""
        first = self.folds[0].extra["test_proba"]
        n = sum(len(test) for _, test in self.splits)
        out = np.zeros((n, first.shape[1]), dtype=np.float32)
        for result, (_, test) in zip(self.folds, self.splits):
            out[test] = result.extra["test_proba"]
        return out

    def summary(self) -> dict:
        """The scores, mean, std and timings as one JSON-ready dict (the `--json` line)."""
        return {
            "model": self.model_name,
            "folds": len(self.folds),
            "scores": self.scores.tolist(),  # full precision: the report re-derives the printed figures
            "mean": self.mean,
            "std": self.std,
            "leaky": self.reuse_model,
            "protocol": "reuse-model (leaky)" if self.reuse_model else "fresh model per fold",
            "stratified": self.stratified,
            "split_seed": self.split_seed,
            "executor": self.executor,
            "fold_train_time_s": [round(f.train_time_s, 3) for f in self.folds],
            "wall_time_s": round(self.wall_time_s, 3),
            "resumed_folds": list(self.resumed),
            "output": str(self.output) if self.output else None,
        }


def cross_validate(model_name: str, x, y, *, folds: int = 5, config: TrainConfig,
                   model_kwargs: dict | None = None, seed: int = 1, stratified: bool = False,
                   reuse_model: bool = False, executor=None,
                   on_result: Callable[[FoldResult], None] | None = None,
                   output: str | Path | None = None, resume: bool = False,
                   record_weights: bool = False) -> CVResult:
    """k-fold cross-validation of `model_name` on the pool (x, y).

    x: uint8 (N, 28, 28) images; y: int64 labels (N,). The split is sklearn's KFold(folds, shuffle=True,
    random_state=seed) (StratifiedKFold with `stratified`). With `output`, each fold is saved as soon as
    it completes (see digitlab.evaluate.cv_store) and `resume=True` skips folds already saved there.
    on_result(FoldResult) is called for every fold, saved ones included, as they become available.
    """
    model_kwargs = dict(model_kwargs or {})
    if len(x) != len(y):
        raise ConfigError(f"got {len(x)} images but {len(y)} labels: they must match")
    executor = executor or LocalExecutor()
    if reuse_model and not isinstance(executor, LocalExecutor):
        raise ConfigError("--reuse-model trains one network across the folds, so they cannot run as independent "
                          "tasks: use the local executor")
    if resume and output is None:
        raise ConfigError("resume needs an output folder holding the saved folds: give -o")
    if resume and reuse_model:
        raise ConfigError("--resume cannot continue a --reuse-model run (the shared network between folds is "
                          "not saved): run it again without --resume")
    build_model(model_name, **model_kwargs)  # fail fast on a bad name or argument, before any training
    splits = make_splits(np.asarray(y) if stratified else len(y), folds, seed, stratified=stratified)
    tasks = [FoldTask(k, tr, te, model_name, model_kwargs, config.replace(seed=config.seed + k), record_weights)
             for k, (tr, te) in enumerate(splits)]

    out = Path(output) if output is not None else None
    done: dict[int, FoldResult] = {}
    if out is not None:
        keys = {t.fold: cv_store.task_key(t, reuse_model) for t in tasks}
        if resume:
            done = cv_store.load_folds(out, keys)
        else:
            cv_store.clear_folds(out)

    todo = [t for t in tasks if t.fold not in done]
    waiting: dict[int, FoldResult] = {}
    report_order = [t.fold for t in todo]

    def finished(result: FoldResult) -> None:
        # Saved at once (a crash loses no finished fold), reported in fold order: parallel executors
        # finish folds out of order, and the article's "> 97.717" lines carry no fold number.
        if out is not None:
            cv_store.save_fold(out, result, keys[result.fold])
        waiting[result.fold] = result
        while report_order and report_order[0] in waiting:
            ready = waiting.pop(report_order.pop(0))
            if on_result is not None:
                on_result(ready)

    started = time.perf_counter()
    for fold in sorted(done):
        if on_result is not None:
            on_result(done[fold])
    if todo:
        if reuse_model:
            fresh = _run_reusing_model(todo, x, y, finished)
        else:
            fresh = executor.map(todo, x, y, on_result=finished)
        done.update({r.fold: r for r in fresh})
    wall = time.perf_counter() - started
    return CVResult(
        model_name=model_name, model_kwargs=model_kwargs, config=config, splits=splits,
        folds=[done[k] for k in range(len(tasks))], split_seed=seed, stratified=stratified,
        reuse_model=reuse_model, executor=getattr(executor, "name", type(executor).__name__),
        wall_time_s=wall, resumed=[k for k in sorted(done) if k not in {t.fold for t in todo}], output=out,
    )
