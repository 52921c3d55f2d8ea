"""Images framed unlike MNIST: low resolution, ink touching the edges, ink covering much of the frame.

A digit cropped tight to its ink (scanners, form readers, scikit-learn's 8x8 digits) breaks the
photo path's assumptions: the median pixel may be ink, not paper, and a 3x3 smoothing or a 16-block
background estimate means nothing on 8x8 pixels. Such an image is a clean scan: two grey levels,
paper and ink. Here:

  upsample_small   an image under LOW_RES px is enlarged smoothly (bilinear) by a whole factor, so the
                   ink's box is found to a fraction of an input pixel and resized to 20 px as a
                   smooth shape, not a few blocks
  two_level_ink    Otsu's split of the grey levels; the paper is the level that owns most of the
                   frame's border and corners (a tight crop touches the edges at a few strokes only),
                   dark ink on light paper unless clearly not. Accepted only for a clearly two-level image whose ink is
                   mostly one piece (noise and textures are neither)

Arrays are float32 (H, W) in [0, 1]; grey 0 = black, ink 1 = full-strength ink.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.inference.components import label_components

LOW_RES = 64           # an image whose longer side is under this many px is upsampled to at least it
MIN_CONTRAST = 0.2     # paper and ink levels differ by at least this
MIN_SEPARATION = 0.8   # Otsu's between-class share of the variance: ~0.65-0.75 for noise, > 0.85 for a scan
LOW_RES_SEPARATION = 0.7  # ... an upsampled 8x8 digit is mostly edge: ~0.8
MIN_INK = 0.005        # the ink covers 0.5% to ...
MAX_INK = 0.7          # ... 70% of the frame
DARK_FRAME = 0.55      # dark ink unless the dark level holds over 55% of the frame (border and corners)
MAIN_PIECE = 0.3       # the largest ink piece holds at least 30% of the ink (noise is all specks)
MAX_CONTACT = 0.5      # a tight crop's strokes touch under half of the border; paper framed by a table, more
SIDE_CONTACT = 0.7     # ... and run along 70% of one side at most
MAX_DEPTH = 0.2        # no ink lies further than 20% of the frame's longer side from the paper: strokes


def upsample_small(grey: np.ndarray, low_res: int = LOW_RES) -> tuple[np.ndarray, int]:
    """(grey, factor): images shorter than `low_res` on their longer side, enlarged by the whole factor
    that brings them to at least it (bilinear: smooth strokes); others unchanged with factor 1."""
    side = max(grey.shape)
    if side >= low_res:
        return grey, 1
    factor = -(-low_res // side)
    h, w = grey.shape
    big = Image.fromarray(grey.astype(np.float32)).resize((w * factor, h * factor), Image.BILINEAR)
    return np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0), factor


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of [0, 1] data (256-bin histogram): maximises the between-class variance."""
    hist = np.bincount(np.clip(values * 255 + 0.5, 0, 255).astype(np.int32).ravel(), minlength=256)
    p = hist / max(1, hist.sum())
    levels = np.arange(256) / 255.0
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1.0 - w0))
    between[~np.isfinite(between)] = 0.0
    # Between two modes with empty levels between them the variance is flat: take that plateau's
    # middle (the conventional first maximum would hug the lower mode).
    best = int(np.argmax(between))
    flat = np.flatnonzero(between >= between[best] * (1 - 1e-9))
    flat_levels = set(flat.tolist())
    run_end = best
    while run_end + 1 in flat_levels:
        run_end += 1
    return float(((best + run_end) / 2 + 0.5) / 255.0)


def two_level_ink(grey: np.ndarray, separation: float = MIN_SEPARATION,
                  upsampled: bool = False) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(ink, mask, inverted) of a two-level image (paper and ink), or None when it is not one.

    upsampled: the image was enlarged from a few pixels (see `upsample_small`), where ink may run
    along whole sides of the frame; at full resolution ink touching more than MAX_CONTACT of the
    frame's border is not taken for ink.

    inverted: the ink is darker than the paper (the grey was inverted to make ink high). The ink is
    the grey's distance from the paper level, scaled so the ink level is 1; the mask is Otsu's ink side.
    """
    t = otsu_threshold(grey)
    dark = grey < t
    n_dark = int(dark.sum())
    if n_dark == 0 or n_dark == dark.size:
        return None
    dark_level, light_level = float(np.median(grey[dark])), float(np.median(grey[~dark]))
    if light_level - dark_level < MIN_CONTRAST:
        return None
    mean = float(grey.mean())
    total = float(((grey - mean) ** 2).sum())
    between = n_dark * (float(grey[dark].mean()) - mean) ** 2 + (dark.size - n_dark) * (float(grey[~dark].mean()) - mean) ** 2
    if total <= 0 or between / total < separation:
        return None
    inverted = _dark_frame_share(dark) <= DARK_FRAME  # the frame is mostly light: light paper, dark ink
    mask = dark if inverted else ~dark
    if not MIN_INK <= float(mask.mean()) <= MAX_INK:
        return None
    comps = label_components(mask)
    if comps.areas.max() < MAIN_PIECE * comps.areas.sum():
        return None
    if not upsampled and _framed_by_table(mask):
        return None  # the "ink" is the paper, framed by the table or a shadow at the borders
    if not upsampled and _solid(mask):
        return None  # the "ink" is a shadow or the table: a region, not strokes
    paper, ink_level = (light_level, dark_level) if inverted else (dark_level, light_level)
    ink = np.clip((grey - paper) / (ink_level - paper), 0.0, 1.0).astype(np.float32)
    return ink, mask, inverted


def _dark_frame_share(dark: np.ndarray) -> float:
    """How much of the frame is dark: the mean of the border's dark share and the four corners'
    (an eighth of the side each). A tight crop's strokes touch the border, but rarely fill a corner."""
    k = max(1, min(dark.shape) // 8)
    border = np.concatenate([dark[0], dark[-1], dark[1:-1, 0], dark[1:-1, -1]])
    corners = [dark[:k, :k], dark[:k, -k:], dark[-k:, :k], dark[-k:, -k:]]
    return (float(border.mean()) + float(np.mean([c.mean() for c in corners]))) / 2


def _solid(mask: np.ndarray, side: int = 64) -> bool:
    """Does some of this "ink" lie deeper inside it than a stroke can, more than MAX_DEPTH of the frame's
    longer side from the nearest paper? A hard shadow or the table over a third of a photo does; a
    tight crop's strokes, however bold, do not. Beyond the frame counts as ink (a crop cuts strokes),
    and the distance is taken on a copy about `side` px across (it need not be exact)."""
    step = max(1, max(mask.shape) // side)
    small = mask[::step, ::step]
    if small.all():
        return True
    padded = np.pad(small, 1, mode="edge")
    depth = ndimage.distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1]
    return float(depth.max()) * step > MAX_DEPTH * max(mask.shape)


def _framed_by_table(mask: np.ndarray) -> bool:
    """Is this "ink" the paper, with the table beyond its edges at the frame's borders? It then runs
    along more than MAX_CONTACT of the border, or along two sides (a tight crop's strokes touch each
    side at a few places; a 7's bar runs along one)."""
    sides = [float(side.mean()) for side in (mask[0], mask[-1], mask[:, 0], mask[:, -1])]
    border = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(border.mean()) > MAX_CONTACT or sorted(sides)[-2] > SIDE_CONTACT
