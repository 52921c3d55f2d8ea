"""Fixtures for the plot and report tests: a tiny synthetic dataset and the folders runs write."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest


def make_tiny_dataset(n_train: int = 500, n_test: int = 100):
    """A Dataset of learnable synthetic 'digits' (class k is a bar at rows 2k+4..2k+6), as tiny_digits."""
    from digitlab.data.dataset import Dataset

    rng = np.random.default_rng(0)
    n = n_train + n_test
    y = rng.integers(0, 10, n).astype(np.int64)
    x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 2 * k + 4 : 2 * k + 7, 4:24] = 255
    return Dataset("mnist", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   tuple(str(i) for i in range(10)), "synthetic (tests)")


@pytest.fixture(scope="session")
def tiny_dataset():
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def reproduce_dir(tmp_path_factory, tiny_dataset):
    """A `reproduce --with-leaky` folder made on the tiny dataset (3 folds, 2 epochs), report included."""
    from digitlab.workflows.reproduce import reproduce_article

    out = tmp_path_factory.mktemp("reproduce")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        reproduce_article(tiny_dataset, out, with_leaky=True, folds=3, epochs=2, device="cpu", threads=1,
                          log=lambda line: None, verbose=False)
    return out
