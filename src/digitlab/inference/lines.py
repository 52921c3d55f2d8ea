"""Printed lines on the paper (ruled lines, a grid, a margin line, the paper's edge) out of the ink mask.

On notebook paper the lines are as dark as the ink under a phone camera, so they pass the ink
threshold, attach to the digit and get read as extra digits. A printed line is long, thin and
straight, and runs well past the writing: the mask's pixels are projected along a few directions
near horizontal (and near vertical); a projection bin holding ink along LINE_SPAN of the frame is a
line. Its pixels are removed except where a stroke crosses it (ink just outside the line on both
sides), so a digit written across a line stays whole.

A line that does not run well past the rest of the ink (PAST_END, LINE_BEYOND) is kept: in a digit
cropped tight to its ink the bar of a 7 spans the frame too, but ends where the digit ends.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.inference.components import label_components, mask_of

SLOPES = np.linspace(-0.05, 0.05, 9)  # skew up to ~3 degrees; neighbours 0.7 degrees apart
LINE_SPAN = 0.6       # a line holds ink along at least 60% of the frame's width (or height)
PAST_END = 0.2        # ... and runs past both ends of the rest of the ink by 20% of its width (or height)
LINE_BEYOND = 2.0     # ... or is at least twice as long as the rest of the ink is wide (or tall)
EDGE_WIDTH = 0.25     # bands touching the frame may be this thick (the table beyond the paper's edge)
REST_PIECE = 0.1      # the rest of the ink: pieces at least 10% of its largest piece
BAND_CONTACT = 0.3    # the table beyond the paper's edge touches 30% of a side or more
BAND_CLEAR = 0.02     # ... where the digit stays 2% of the frame clear of every side
FRAME_SPAN = 0.95     # a printed line crosses the whole photo; a long pen stroke (a 4's stem, a 7's bar) stops short


def _bands(ys: np.ndarray, xs: np.ndarray, length: int, across: int) -> list[tuple[float, int, int]]:
    """Lines running along x (ys across, xs along): [(slope, first bin, last bin)], bins being
    round(y - slope * x) + offset. Strongest first; each a run of bins each holding >= LINE_SPAN."""
    offset = int(np.ceil(abs(SLOPES).max() * length)) + 1
    found: list[tuple[int, float, int, int]] = []
    for slope in SLOPES:
        bins = np.rint(ys - slope * xs).astype(np.int64) + offset
        counts = np.bincount(bins, minlength=across + 2 * offset + 1)
        full = counts >= LINE_SPAN * length
        if not full.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], full.astype(np.int8), [0]])))
        for r0, r1 in zip(edges[0::2], edges[1::2] - 1):
            found.append((int(counts[r0 : r1 + 1].sum()), float(slope), int(r0), int(r1)))
    kept: list[tuple[float, int, int]] = []
    for _, slope, r0, r1 in sorted(found, reverse=True):
        # The same line seen at a neighbouring slope: its bins overlap an accepted band's.
        if all(r1 < k0 - 2 or r0 > k1 + 2 for _, k0, k1 in kept):
            kept.append((slope, r0 - offset, r1 - offset))
    return kept


def _may_hold_a_line(mask: np.ndarray) -> bool:
    """Could `_bands` find a line along the mask's rows? A bin holds at most one pixel per column, all
    within |slope| * width + 2 consecutive rows: unless some band of that many rows has ink in
    LINE_SPAN of the columns, it finds none. Cheaper than its projections, and false for most digits."""
    h, w = mask.shape
    need = LINE_SPAN * w
    if np.count_nonzero(mask.any(axis=0)) < need:
        return False
    window = min(h, int(np.ceil(abs(SLOPES).max() * w)) + 2)
    banded = ndimage.maximum_filter1d(mask.view(np.uint8), window, axis=0, mode="constant")
    return int(np.count_nonzero(banded, axis=1).max()) >= need


def _in_band(ys: np.ndarray, xs: np.ndarray, band: tuple[float, int, int], vertical: bool) -> np.ndarray:
    """Which of the ink pixels (ys, xs) lie inside a band (r0 <= round(y - slope x) <= r1), widened by
    1 px: bool, one per pixel."""
    slope, r0, r1 = band
    r = np.rint(xs - slope * ys) if vertical else np.rint(ys - slope * xs)
    return (r >= r0 - 1) & (r <= r1 + 1)


def remove_lines(mask: np.ndarray) -> np.ndarray:
    """The mask without printed lines (see the module docstring); the mask itself when it has none,
    or when nothing but lines is left (a lone straight stroke is a 1)."""
    h, w = mask.shape
    along_x, along_y = _may_hold_a_line(mask), _may_hold_a_line(mask.T)
    if not (along_x or along_y):
        return mask
    ys, xs = np.nonzero(mask)
    found = ([(b, False) for b in _bands(ys, xs, w, h)] if along_x else []) + (
        [(b, True) for b in _bands(xs, ys, h, w)] if along_y else [])
    found = [(b, v) for b, v in found if b[2] - b[1] + 1 <= _max_width(b, v, h, w)]
    if not found:
        return mask
    inside = [_in_band(ys, xs, b, v) for b, v in found]
    rest = _main_ink(_pixels(mask.shape, ys, xs, ~np.logical_or.reduce(inside)))
    if rest is None:
        return mask
    ry, rx = np.nonzero(rest)
    keep = [i for i, (_, vertical) in enumerate(found)
            if np.ptp((ys if vertical else xs)[inside[i]]) + 1 >= FRAME_SPAN * (h if vertical else w)
            and _runs_past((ys if vertical else xs)[inside[i]], ry if vertical else rx)]
    if not keep:
        return mask
    on_lines = np.logical_or.reduce([inside[i] for i in keep])
    out = _pixels(mask.shape, ys, xs, ~on_lines)
    # A stroke crossing a line: ink within the band's width + 2 px on both sides of it, across it.
    crossing = np.zeros(ys.size, bool)
    for i in keep:
        (_, r0, r1), vertical = found[i]
        py, px = ys[inside[i]], xs[inside[i]]
        reach = np.arange(1, r1 - r0 + 4)
        along, across, limit = (py, px, w) if vertical else (px, py, h)
        before = np.clip(across[:, None] - reach, 0, limit - 1)
        after = np.clip(across[:, None] + reach, 0, limit - 1)
        at = (lambda a: out[along[:, None], a]) if vertical else (lambda a: out[a, along[:, None]])
        hit = at(before).any(axis=1) & at(after).any(axis=1)
        crossing[np.flatnonzero(inside[i])[hit]] = True
    return out | _pixels(mask.shape, ys, xs, crossing & on_lines)


def _runs_past(line: np.ndarray, rest: np.ndarray) -> bool:
    """Does a line (its pixels' coordinates along it) run well past the rest of the ink (theirs)?
    Past both of its ends by PAST_END of its length, or LINE_BEYOND times as long (a digit near the
    page's edge has the line on one side only)."""
    lo, hi, length = int(rest.min()), int(rest.max()), int(np.ptp(rest)) + 1
    both_ends = line.min() <= lo - PAST_END * length and line.max() >= hi + PAST_END * length
    return bool(both_ends or np.ptp(line) + 1 >= LINE_BEYOND * length)


def _pixels(shape, ys: np.ndarray, xs: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[ys[chosen], xs[chosen]] = True
    return out


def _max_width(band, vertical: bool, h: int, w: int) -> int:
    """Thin lines: up to 2% of the frame + 3 px; a band touching the frame may be EDGE_WIDTH thick."""
    _, r0, r1 = band
    across = w if vertical else h
    if r0 <= 1 or r1 >= across - 2:
        return int(EDGE_WIDTH * across)
    return int(0.02 * across) + 3


def _main_ink(mask: np.ndarray) -> np.ndarray | None:
    """The mask's pieces of at least REST_PIECE of its largest one, or None when it is empty."""
    comps = label_components(mask)
    if len(comps) == 0:
        return None
    return mask_of(comps, np.flatnonzero(comps.areas >= REST_PIECE * comps.areas.max()))


def remove_border_bands(mask: np.ndarray) -> np.ndarray:
    """The mask without the table beyond the paper's edge (or a dark shadow along a border): a band
    holding ink along at least BAND_CONTACT of one of the frame's sides. The band ends, in each
    column (or row), where the ink counted from the border stops being mostly ink (a table's texture
    leaves holes); a running median along the side leaves a stroke that touches it in a few columns.

    Removed only when the digit (the largest piece of the rest) stays clear of every side (a tight
    crop's digit touches the frame, and its bar may run along a whole side) and the band runs past
    it at one end or both, from a corner of the frame (a paper edge crosses the frame). The mask
    itself otherwise."""
    bands = [_border_band(mask, side) for side in range(4)]
    found = [b for b in bands if b is not None]
    if not found:
        return mask
    rest = label_components(mask & ~np.logical_or.reduce(found))
    if len(rest) == 0:
        return mask
    ry, rx = np.nonzero(mask_of(rest, [int(np.argmax(rest.areas))]))
    h, w = mask.shape
    if min(ry.min(), rx.min(), h - 1 - ry.max(), w - 1 - rx.max()) < BAND_CLEAR * min(h, w):
        return mask
    out = mask.copy()
    for side, band in enumerate(bands):
        if band is None:
            continue
        along = np.flatnonzero(band.any(axis=0 if side in (0, 2) else 1))
        digit = rx if side in (0, 2) else ry
        reach = PAST_END * (int(np.ptp(digit)) + 1)
        length = w if side in (0, 2) else h
        # A paper's edge crosses the frame: its band reaches a corner (a 7's bar touching the top does not).
        corner = along.min() <= BAND_CLEAR * length or along.max() >= (1 - BAND_CLEAR) * length - 1
        if corner and (along.min() <= digit.min() - reach or along.max() >= digit.max() + reach):
            out &= ~band
    return out


def _border_band(mask: np.ndarray, side: int) -> np.ndarray | None:
    """The band along one side (0 top, 1 right, 2 bottom, 3 left) as a bool mask, or None."""
    view = np.rot90(mask, side)  # the side in question on top
    h, w = view.shape
    reach = max(2, int(EDGE_WIDTH * h))
    k = max(3, h // 40)
    if view[: max(2, h // 50) + k].any(axis=0).mean() < BAND_CONTACT / 2:
        return None  # cheap first look: the dense-ink contact below is at most this, widened by k
    # The table's texture leaves holes in its ink: the band is found where ink is dense, not solid.
    top = ndimage.uniform_filter(view[:reach].astype(np.float32), size=k, mode="nearest") > 0.25
    contact = top[: max(2, h // 50)].any(axis=0)
    if contact.mean() < BAND_CONTACT:
        return None
    # Each column's band: the run of dense ink from the border (a stroke beyond a gap is not in it).
    depth = np.where(top.all(axis=0), reach, np.argmin(top, axis=0)) * contact
    depth = ndimage.median_filter(depth, size=max(3, w // 8), mode="nearest")
    depth = np.where(depth > 0, np.minimum(depth + 2 + h // 100, reach), 0)
    band = np.arange(h)[:, None] < depth[None, :]
    return np.rot90(band & view, -side) if band.any() else None
