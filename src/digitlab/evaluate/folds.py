"""The folds of a cross-validation: scikit-learn's splits, one fold's task and its result.

Plain data, below both the runner (digitlab.evaluate.crossval) and the per-fold store
(digitlab.evaluate.cv_store), so neither needs the other to describe a fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from digitlab.errors import ConfigError
from digitlab.train.config import TrainConfig


@dataclass(frozen=True)
class FoldTask:
    """Everything one fold needs except the data arrays; small and picklable."""

    fold: int  # 0-based
    train_idx: np.ndarray  # int64 indices into the CV pool
    test_idx: np.ndarray
    model_name: str
    model_kwargs: dict
    config: TrainConfig  # config.seed is this fold's seed (the run's seed + fold)
    record_weights: bool = False  # add weight fingerprints to FoldResult.extra (tests)


@dataclass
class FoldResult:
    fold: int
    accuracy: float  # on the fold's test images, in [0, 1]
    loss: float  # mean cross-entropy on the fold's test images
    history: dict  # History as a plain dict of lists
    train_time_s: float
    n_train: int
    n_test: int
    node_id: str | None = None  # the Ray executor fills this
    pid: int | None = None
    # "test_proba": float32 (n_test, C) softmax of the fold's test images, in test_idx order;
    # "weights_first_batch"/"weights_final": SHA-256 of the weights before the first and after the
    # last optimizer step (record_weights only).
    extra: dict = field(default_factory=dict)


def make_splits(n_or_y, folds: int = 5, seed: int | None = 1, shuffle: bool = True,
                stratified: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's KFold (or StratifiedKFold) indices, as int64 (train_idx, test_idx) pairs.

    n_or_y: the pool size, or its labels (needed for stratified splits).
    Identical to `KFold(folds, shuffle=True, random_state=seed).split(range(n))`.
    """
    labels = None if np.isscalar(n_or_y) else np.asarray(n_or_y)
    n = int(n_or_y) if labels is None else len(labels)
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}")
    if n < folds:
        raise ConfigError(f"cannot split {n} images into {folds} folds: use fewer folds or more data")
    if stratified and labels is None:
        raise ConfigError("stratified splits need the labels: pass y instead of the pool size")
    random_state = seed if shuffle else None
    splitter = (StratifiedKFold if stratified else KFold)(int(folds), shuffle=shuffle, random_state=random_state)
    try:
        pairs = splitter.split(np.zeros((n, 1)), labels if stratified else None)
        return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in pairs]
    except ValueError as exc:  # e.g. a class with fewer members than folds
        raise ConfigError(f"cannot make {folds} {'stratified ' if stratified else ''}folds: {exc}") from None
