"""Helpers for the data-layer tests (a module with a unique name, importable from tests/data)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from digitlab.data.idx import encode_idx
from digitlab.data.sources import ROLES, DatasetSpec, FileSpec

REPO = Path(__file__).resolve().parents[2]
# Captured before the autouse fixture clears it: integration tests use the real MNIST from here.
REAL_DATA_ROOT = Path(os.environ.get("DIGITLAB_DATA_DIR") or REPO.parent / "shared" / "data").resolve()

OFFICIAL_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def tiny_arrays(n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Role -> array: uint8 images (n, 28, 28) and uint8 labels cycling through 0-9."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": ((np.arange(n_test) + 3) % 10).astype(np.uint8),
    }


def write_tiny_folder(folder: Path, arrays: dict[str, np.ndarray] | None = None, compress: bool = True) -> dict:
    """Write the four IDX files (official names, .gz or raw) into `folder`; return the arrays."""
    arrays = tiny_arrays() if arrays is None else arrays
    folder.mkdir(parents=True, exist_ok=True)
    for role in ROLES:
        raw = encode_idx(arrays[role])
        name = OFFICIAL_NAMES[role]
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def spec_for(arrays: dict[str, np.ndarray], name: str = "tiny", mirrors: tuple[str, ...] = ()) -> DatasetSpec:
    """A spec whose decompressed SHA-256 values match `arrays` encoded as IDX."""
    files = {
        role: FileSpec(f"{OFFICIAL_NAMES[role]}.gz", sha256=hashlib.sha256(encode_idx(arrays[role])).hexdigest(),
                       count=len(arrays[role]))
        for role in ROLES
    }
    return DatasetSpec(name=name, files=files, mirrors=mirrors, classes=tuple("0123456789"), num_classes=10)


def listing(folder: Path) -> list[str]:
    """Every entry under `folder`, hidden temp files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
