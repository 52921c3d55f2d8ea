"""The writing-style part of the "styles" augmentation: stroke width, blur and low resolution.

Each works on a batch x: float (N, 1, S, S) in [0, 1] with per-image strengths, as a few batched
matrix products or one pooling call (no per-image Python loop), on x's device; images not drawn for
an operation pass through unchanged. Why these: real digits come thinner or heavier than MNIST's pen,
out of focus, or from a few pixels (scikit-learn's 8x8 digits reach the model upsampled, blocky and
in 16 grey levels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def _chosen(n: int, p: float, generator, like):
    return torch.rand((n,), generator=generator, device=like.device, dtype=like.dtype) < p


def stroke_width(x, t):
    """t: (N,) in [-1, 1]: > 0 blends in a 3x3 dilation (thicker), < 0 an erosion (thinner)."""
    dilated = F.max_pool2d(x, 3, 1, 1)
    eroded = -F.max_pool2d(-x, 3, 1, 1)
    t = t.view(-1, 1, 1, 1)
    return x + t.clamp(min=0) * (dilated - x) + (-t).clamp(min=0) * (eroded - x)


def blur(x, sigma):
    """Gaussian blur of width sigma (N,) px per image (0 = unchanged), as B @ x @ B.T per image."""
    size = x.shape[-1]
    pos = torch.arange(size, device=x.device, dtype=x.dtype)
    d = pos[None, :, None] - pos[None, None, :]  # (1, S, S)
    s = sigma.clamp(min=1e-3).view(-1, 1, 1)
    b = torch.exp(-0.5 * (d / s) ** 2)
    b = (b / b.sum(-1, keepdim=True)).unsqueeze(1)  # (N, 1, S, S), rows sum to one
    return b @ x @ b.transpose(-1, -2)


def low_resolution(x, bins, quantise):
    """Each image area-averaged down to bins[i] x bins[i] px, optionally quantised to 16 levels, and
    brought back to S x S by bilinear interpolation. bins: int (N,) in [1, S]; quantise: bool (N,)."""
    n, size = x.shape[0], x.shape[-1]
    m = bins.to(x.dtype).view(-1, 1, 1)
    top = int(bins.max())
    j = torch.arange(top, device=x.device, dtype=x.dtype).view(1, -1, 1)
    k = torch.arange(size, device=x.device, dtype=x.dtype).view(1, 1, -1)
    width = size / m
    lo, hi = j * width, (j + 1) * width
    overlap = (torch.minimum(hi, k + 1) - torch.maximum(lo, k)).clamp(min=0) / width
    down = torch.where(j < m, overlap, torch.zeros((), device=x.device, dtype=x.dtype)).unsqueeze(1)  # (N,1,M,S)
    small = down @ x @ down.transpose(-1, -2)
    q = quantise.view(-1, 1, 1, 1)
    small = torch.where(q, torch.round(small * 15) / 15, small)
    centre = ((torch.arange(size, device=x.device, dtype=x.dtype) + 0.5).view(1, -1) * m.view(-1, 1) / size - 0.5)
    centre = torch.minimum(centre.clamp(min=0), m.view(-1, 1) - 1)  # (N, S) in low-resolution px
    j0 = centre.floor()
    w = (centre - j0).unsqueeze(-1)
    j1 = torch.minimum(j0 + 1, m.view(-1, 1) - 1)
    cols = torch.arange(top, device=x.device, dtype=x.dtype).view(1, 1, -1)
    up = ((1 - w) * (cols == j0.unsqueeze(-1)) + w * (cols == j1.unsqueeze(-1))).unsqueeze(1)  # (N, 1, S, M)
    return up @ small @ up.transpose(-1, -2)


def apply_styles(x, opts: dict, generator):
    """Stroke width, then blur, then low resolution, each on its drawn share of the batch; stays in [0, 1]."""
    n, size = x.shape[0], x.shape[-1]

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand((n,), generator=generator, device=x.device, dtype=x.dtype)

    keep = x
    if opts["stroke_p"] > 0 and (opts["thick"] > 0 or opts["thin"] > 0):
        t = uniform(-opts["thin"], opts["thick"]) * _chosen(n, opts["stroke_p"], generator, x)
        x = stroke_width(x, t)
    if opts["blur_p"] > 0 and opts["blur"] > 0:
        sigma = uniform(0.0, opts["blur"]) * _chosen(n, opts["blur_p"], generator, x)
        x = blur(x, sigma)
    if opts["lowres_p"] > 0:
        chosen = _chosen(n, opts["lowres_p"], generator, x)
        digit_px = uniform(opts["lowres_min"], opts["lowres_max"] + 1).floor().clamp(max=opts["lowres_max"])
        bins = torch.round(digit_px * size / 20).clamp(1, size).to(torch.long)
        small = low_resolution(x, bins, _chosen(n, opts["quantise_p"], generator, x))
        x = torch.where(chosen.view(-1, 1, 1, 1), small, x)
    return x.clamp(0.0, 1.0) if x is not keep else x
