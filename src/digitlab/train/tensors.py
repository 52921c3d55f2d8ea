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
