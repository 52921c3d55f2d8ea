"""Images and labels as the models take them: float (N, 1, 28, 28) in [0, 1], int64 labels."""

from __future__ import annotations

import numpy as np
import torch

from digitlab.errors import ConfigError


def to_input_tensor(x, device=None, dtype=None):
    """uint8 (N, 28, 28) images (numpy or tensor) -> float (N, 1, 28, 28) in [0, 1] on `device`.

    dtype: float32 by default; bfloat16 converts straight from uint8 (exact: every 0-255 integer is
    a bfloat16, and the quotient is rounded once), without a float32 copy of the whole set.
    """
    dtype = dtype or torch.float32
    # torch.tensor copies: datasets hand out read-only (shared, cached) arrays.
    t = torch.tensor(x) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    if t.ndim != 4 or tuple(t.shape[1:]) != (1, 28, 28):
        raise ConfigError(f"images must be shaped (N, 28, 28) or (N, 1, 28, 28), got {tuple(t.shape)}")
    t = t.to(device)
    if t.dtype == torch.uint8:
        return t.to(dtype).div_(255.0)
    return t.to(dtype)


def to_label_tensor(y, device=None):
    t = torch.tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y
    return t.to(device=device, dtype=torch.long)


def split_validation(x, y, n_val: int, seed: int):
    """(x_train, y_train, x_val, y_val): `n_val` items held out of (x, y), the same ones for a given seed."""
    if n_val >= len(x):
        raise ConfigError(f"val split ({n_val}) must be smaller than the training set ({len(x)} images)")
    # Its own generator, so the split is the same whatever the model or training seed does.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_000 + seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]
