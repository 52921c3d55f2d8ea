"""Fixtures for the evaluation tests: small synthetic data only (the real MNIST is for integration tests)."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.train.config import TrainConfig

# Small and quick: a small mlp learns tiny_digits' bars in a few epochs of batch 32.
FAST = TrainConfig.from_flat(epochs=2, batch_size=32, seed=0, device="cpu", threads=1)


@pytest.fixture
def fast_config():
    return FAST


@pytest.fixture
def tiny_mnist_dir(tmp_path, tiny_digits):
    """A folder holding the four IDX files of a tiny 'MNIST' made of tiny_digits (500 train, 100 test)."""
    from digitlab.data.idx import encode_idx

    x, y = tiny_digits
    files = {
        "train-images-idx3-ubyte": x[:500], "train-labels-idx1-ubyte": y[:500].astype(np.uint8),
        "t10k-images-idx3-ubyte": x[500:], "t10k-labels-idx1-ubyte": y[500:].astype(np.uint8),
    }
    folder = tmp_path / "tiny-mnist"
    folder.mkdir()
    for name, array in files.items():
        (folder / name).write_bytes(encode_idx(array))
    return folder
