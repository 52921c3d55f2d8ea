"""Step 5 of preparing a user's image (see digitlab.inference.preprocess): the paper's level under the
ink, estimated and divided out, so that gradients and soft shadows do not become ink.

Arrays are float32 (H, W) in [0, 1], ink-high (1 = full-strength ink, the MNIST polarity).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.inference.noise import block_reduce

SHADOW_DEPTH = 0.55  # shadows darken paper by less than this; a darker "background" block is a stroke
SHADOW_STEP = 0.15  # a neighbouring block this much darker (as a share of the light) is a shadow's edge
GRID = 16  # the background lattice's blocks along the longer side


def estimate_background(v: np.ndarray, grid: int = GRID, shadow_edges: bool = True) -> np.ndarray:
    """The paper's level under an ink-high image `v`, smooth, same shape: float32 in [0, 1]; with
    `shadow_edges`, it then follows hard shadows' edges (see `_follow_shadow_edges`)."""
    smooth, lattice, block = _smooth_estimate(v, grid)
    return _follow_shadow_edges(v, lattice, smooth, block) if shadow_edges else smooth


def _smooth_estimate(v: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(estimate, lattice, block px): the paper's level under `v` as a smooth image, and the lattice.

    Block minima on a ~grid x grid lattice find the paper in each block. A grey opening on the lattice
    then removes blocks that lie wholly inside a stroke. Its width is a trade-off: 3 blocks follows a
    shadow into a corner but leaves bold strokes (over 2 blocks wide) in; 5 blocks removes those but
    cuts shadow corners, which then look like ink. So the 3-block estimate is used except where it
    sits far above the 5-block one (by more than a shadow's depth): there a bold stroke filled it.
    Bilinear interpolation brings the lattice back to full size.
    """
    h, w = v.shape
    block = max(2, -(-max(h, w) // grid))
    gh, gw = -(-h // block), -(-w // block)
    padded = _pad_edge(v, gh * block, gw * block)
    lattice = block_reduce(padded, block, np.minimum)
    narrow = ndimage.grey_opening(lattice, size=(min(3, gh), min(3, gw)), mode="nearest")
    wide = ndimage.grey_opening(lattice, size=(min(5, gh), min(5, gw)), mode="nearest")
    inside_stroke = (narrow - wide) / np.maximum(1.0 - wide, 0.05) > SHADOW_DEPTH
    lattice = np.where(inside_stroke, wide, narrow).astype(np.float32)
    smooth = _upsample(lattice, gh * block, gw * block)[:h, :w]
    return smooth, lattice, block


def _pad_edge(v: np.ndarray, height: int, width: int) -> np.ndarray:
    """`v` grown to (height, width) by repeating its last row and column: np.pad's "edge" mode,
    without its overhead (it costs as much as the rest of the lattice)."""
    h, w = v.shape
    if (h, w) == (height, width):
        return v
    out = np.empty((height, width), v.dtype)
    out[:h, :w] = v
    out[h:, :w] = v[-1]
    out[:, w:] = out[:, w - 1 : w]
    return out


def _follow_shadow_edges(v: np.ndarray, lattice: np.ndarray, smooth: np.ndarray, block: int) -> np.ndarray:
    """The background across a hard shadow's edge, which a smooth lattice estimate cannot follow.

    Interpolated across a sharp edge, the estimate sits at the lit paper's level on the shadowed side,
    so a band of shadowed paper one block wide reads as ink. Where the paper within a block of a
    block's neighbours steps from lit to shadowed (darker by SHADOW_STEP to SHADOW_DEPTH of the light),
    everything up to the shadow's level is taken as paper there: shadowed paper and the edge's blur
    go, and ink keeps what stands out of the shadow. Images without such a step (most) return
    `smooth` untouched.
    """
    # Shadow and light are regions: a closing first fills lighter runs under 3 blocks wide (the halo
    # some drawing apps leave beside a stroke), so only a step between two regions remains.
    regions = ndimage.grey_closing(lattice, size=(3, 3), mode="nearest")
    darkest = ndimage.grey_dilation(regions, size=(3, 3), mode="nearest")  # the darkest paper nearby
    lightest = ndimage.grey_erosion(regions, size=(3, 3), mode="nearest")  # what the estimate leans to
    step = (darkest - lightest) / np.maximum(1.0 - lightest, 0.05)
    edge = (step > SHADOW_STEP) & (step < SHADOW_DEPTH)
    if not edge.any():
        return smooth
    h, w = v.shape
    shadow = np.where(edge, darkest, 0.0).astype(np.float32)
    shadow = np.repeat(np.repeat(shadow, block, axis=0), block, axis=1)[:h, :w]
    return np.maximum(smooth, np.minimum(v, shadow))


@functools.lru_cache(maxsize=64)
def _bilinear_weights(n: int, size: int) -> np.ndarray:
    """(n, size) float32: Pillow's bilinear resize of n samples to `size`, as a matrix (row i is
    where sample i goes), read off Pillow itself by resizing the identity."""
    eye = Image.fromarray(np.eye(n, dtype=np.float32))
    return np.asarray(eye.resize((size, n), Image.BILINEAR), dtype=np.float32)


def _upsample(lattice: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow's bilinear resize of a small float32 lattice to (height, width), as two matrix
    products: 5x faster than Image.resize on a 16 x 16 lattice, the same to float rounding."""
    gh, gw = lattice.shape
    return (_bilinear_weights(gh, height).T @ lattice @ _bilinear_weights(gw, width)).astype(np.float32)


def suppress_background(v: np.ndarray, level: float | None = None, shadow_edges: bool = True) -> np.ndarray:
    """Step 5: ink strength in [0, 1] from an ink-high image, with uneven lighting removed.

    Light falling on paper multiplies: a pixel is paper * (1 - ink). In the ink-high domain that is
    ink = (v - b) / (1 - b) with b the local background, which cancels gradients and soft shadows and
    keeps the ink's grey levels (anti-aliased edges stay grey). `level`: a known flat background
    (skips the estimate). shadow_edges=False: a plain smooth estimate, for comparing the two polarity
    hypotheses (under the wrong one, strokes would pass for shadows' edges).
    """
    if level is not None:
        b = np.float32(level)
    else:
        b = estimate_background(v, shadow_edges=shadow_edges)
    return _ink(v, b)


def _ink(v: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(v - b) / (1 - b), clipped to [0, 1], in float32 and in place (the temporaries cost more than
    the arithmetic)."""
    room = np.maximum(np.subtract(1.0, b, dtype=np.float32), np.float32(0.05))
    out = np.subtract(v, b, dtype=np.float32)
    out /= room
    return np.clip(out, 0.0, 1.0, out=out)


def ink_both_ways(v: np.ndarray) -> tuple[np.ndarray, Callable[[], np.ndarray]]:
    """(ink under a smooth estimate, a function giving the ink with shadows' edges followed) from
    one estimate: the first compares polarity hypotheses, the second is the winner's ink, computed
    only for the winner (the same array when no shadow's edge is there, as in most images)."""
    smooth, lattice, block = _smooth_estimate(v, GRID)
    plain = _ink(v, smooth)

    def followed() -> np.ndarray:
        b = _follow_shadow_edges(v, lattice, smooth, block)
        return plain if b is smooth else _ink(v, b)

    return plain, followed
