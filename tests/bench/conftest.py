"""Shared by the bench tests: the bench/ script under test, loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench_script(name: str):
    """bench/NAME.py as the module NAME, as it runs: bench/ on the path for its own imports (step_profile
    imports time_to_accuracy), and the module in sys.modules so that worker processes find its functions."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(request):
    """The script named by the test module's BENCH_SCRIPT."""
    return load_bench_script(request.module.BENCH_SCRIPT)


def write_mnist_like(folder: Path, n_train: int, n_test: int) -> Path:
    """Random images and labels as the four MNIST IDX files in `folder`: for timing, not accuracy."""
    from digitlab.data.idx import encode_idx

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(rng.integers(0, 10, n).astype(np.uint8)))
    return folder


@pytest.fixture
def mnist_like(tmp_path):
    """mnist_like(n_train, n_test) -> a folder of random MNIST-format files."""
    return lambda n_train, n_test: write_mnist_like(tmp_path / "mnist-like", n_train, n_test)
