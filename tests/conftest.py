"""Shared fixtures. The real MNIST comes from $DIGITLAB_DATA_DIR (CI: ../shared/data)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from digitlab.data.idx import encode_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config):
    # Tests find the shared MNIST when the variable is not set (developers' checkouts sit beside shared/).
    if "DIGITLAB_DATA_DIR" not in os.environ and (SHARED / "mnist").is_dir():
        os.environ["DIGITLAB_DATA_DIR"] = str(SHARED)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never touch (or download into) the user's real cache from a test.
    monkeypatch.setenv("DIGITLAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def ieee_floats():
    """Subnormal floats as IEEE-754 has them. The training commands flush denormals for speed (in this
    process too, when a CLI test ran in it), and hypothesis refuses to generate floats in that state."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
    yield


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST as a digitlab Dataset; skips when it is not available."""
    root = os.environ.get("DIGITLAB_DATA_DIR")
    if not root or not (Path(root) / "mnist").is_dir():
        pytest.skip("real MNIST not available: set DIGITLAB_DATA_DIR to a folder with mnist/")
    from digitlab.data.dataset import load_dataset

    return load_dataset("mnist", download=False)


@pytest.fixture
def tiny_digits():
    """600 synthetic 28x28 uint8 'digits' a model can learn: class k is a bar at rows 2k..2k+3."""
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 2 * k + 4 : 2 * k + 7, 4:24] = 255
    return x, y.astype(np.int64)


@pytest.fixture
def tiny_data_dir(tmp_path, tiny_digits):
    """A data folder for --data-dir: tiny_digits as the four gzipped MNIST IDX files (500 train, 100 test)."""
    x, y = tiny_digits
    folder = tmp_path / "tiny-data"
    folder.mkdir()
    parts = {"train-images-idx3-ubyte": x[:500], "train-labels-idx1-ubyte": y[:500].astype(np.uint8),
             "t10k-images-idx3-ubyte": x[500:], "t10k-labels-idx1-ubyte": y[500:].astype(np.uint8)}
    for name, array in parts.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(encode_idx(array)))
    return folder


# Tests that need the real MNIST, a server, a browser or a Ray cluster are slow by nature:
# `pytest -m "not slow"` is the quick loop, plain `pytest` still runs everything.
SLOW_BY_NATURE = ("integration", "e2e", "ray")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_BY_NATURE):
            item.add_marker(pytest.mark.slow)
