"""Fixtures for tests/scale: small synthetic data, and torch's thread count put back after each test
(TrainConfig.from_flat(threads=1) sets it for the whole process)."""

from __future__ import annotations

import pytest
from scale_helpers import synthetic_digits, write_idx_dataset


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def digits():
    """1,200 synthetic (uint8 (N, 28, 28), int64 (N,)) images: learnable, not trivially."""
    return synthetic_digits(1200)


@pytest.fixture(scope="session")
def idx_data_dir(tmp_path_factory):
    """A --data-dir holding the four MNIST IDX files of a synthetic 4,000 + 400 image dataset."""
    return write_idx_dataset(tmp_path_factory.mktemp("idx") / "data", 4000, 400)
