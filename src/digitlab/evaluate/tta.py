"""Test-time augmentation (TTA): average a model's softmax over a few fixed views of each image.

Why: a model trained with random shifts and rotations has learned those views as the same digit, so
asking it about several of them and averaging is a small committee for free at inference (no training).
Each policy is a fixed list of views, (dx, dy, degrees): whole-pixel shifts, exact (pad with the
background and crop), and small rotations about the centre (one batched `grid_sample`). The first view
is always the image itself, so "none" is exactly the model's own prediction.

Which policy helps is a setting like any other: choose it on a validation split
(`bench/ensemble_diversity.py --tta`), never on the test set.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from digitlab.errors import ConfigError

_SHIFT4 = ((0, 0, 0.0), (1, 0, 0.0), (-1, 0, 0.0), (0, 1, 0.0), (0, -1, 0.0))
_ROTATE = ((0, 0, -6.0), (0, 0, 6.0))

# name -> the views, (dx, dy, degrees); dx > 0 moves the digit right, dy > 0 down, degrees > 0 clockwise.
POLICIES: dict[str, tuple[tuple[int, int, float], ...]] = {
    "none": ((0, 0, 0.0),),
    "shift4": _SHIFT4,
    "shift8": ((0, 0, 0.0),) + tuple((dx, dy, 0.0) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)),
    "rotate": ((0, 0, 0.0),) + _ROTATE,
    "shift4-rotate": _SHIFT4 + _ROTATE,
}


def check_policy(name: str | None) -> str:
    """The policy's name ("none" for None); a one-line error naming the choices for an unknown one."""
    name = name or "none"
    if name not in POLICIES:
        raise ConfigError(f"unknown TTA policy {name!r}: choose one of {', '.join(POLICIES)}")
    return name


def shift(x, dx: int, dy: int):
    """float (N, C, H, W) moved dx pixels right and dy down; what comes in is background (0). Exact."""
    if dx == 0 and dy == 0:
        return x
    h, w = x.shape[-2:]
    # Pad on the side the digit moves away from... and crop the side it moves towards.
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


def rotate(x, degrees: float):
    """float (N, C, H, W) rotated `degrees` clockwise about the centre (bilinear, background 0)."""
    if degrees == 0:
        return x
    a = math.radians(degrees)
    # affine_grid maps output to input coordinates: sampling at R(-a) turns the image by +a (clockwise,
    # since y points down).
    theta = torch.tensor([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0]],
                         dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def views(x, policy: str):
    """Yield the policy's views of a float (N, 1, 28, 28) batch, the image itself first."""
    for dx, dy, degrees in POLICIES[check_policy(policy)]:
        yield rotate(shift(x, dx, dy), degrees)
