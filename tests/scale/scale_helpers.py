"""Helpers for tests/scale (a module with a unique name): synthetic IDX datasets and CLI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from digitlab.data.idx import encode_idx

REPO = Path(__file__).resolve().parents[2]


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 'digits' and int64 labels: class k is a faint bar at rows 2k+4..2k+5 in noise,
    and 10% of the labels are random, so a model learns them well but never perfectly (scores vary)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 100, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 2 * k + 4 : 2 * k + 6, 2 + (i % 9) : 14 + (i % 9)] += np.uint8(120)
    noisy = rng.random(n) < 0.1
    y[noisy] = rng.integers(0, 10, int(noisy.sum()))
    return x, y.astype(np.int64)


def write_idx_dataset(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Write the four MNIST IDX files (raw, official names) of a synthetic dataset into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = synthetic_digits(n_train, seed)
    x_test, y_test = synthetic_digits(n_test, seed + 1)
    for name, array in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train.astype(np.uint8)),
                        ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test.astype(np.uint8))):
        (folder / name).write_bytes(encode_idx(array))
    return folder


def cli_env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}
    env.pop("DIGITLAB_DEBUG", None)
    return env


def digitlab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "digitlab", *args]


def run_cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(digitlab_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=cli_env(**env), cwd=REPO)
