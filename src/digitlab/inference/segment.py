"""A line of handwritten digits -> one mask per digit, left to right.

1. Connected components of the ink mask; specks (dust, noise) are dropped.
2. Pieces of a broken digit are merged: a piece that sits mostly above or below another (the two
   strokes of a 4), or a fragment (short, or small) joins the digit it overlaps or is nearest to.
3. Touching digits are split. A group wider than 0.8 of its height is cut along top-to-bottom paths
   that cross the least ink (they may bend between digits that overlap). With a classifier, the
   split is kept when the parts read as digits better than the whole: model log-probabilities plus
   a prior on each digit's width/height (MNIST's, per class), against a prior odds for no split.
   Without one, only groups wider than 1.3x their height are cut, at the cheapest path.

Masks and boxes are in the working image's pixels; boxes are (y0, x0, y1, x1), end-exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from digitlab.inference.components import BIG_PIECE, Components, box_gap, label_components, mask_of, union_box
from digitlab.inference.digit28 import digit_to_28

Classify = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> probabilities (N, C)

SPECK = 0.02          # components under 2% of the largest one's area are noise
SMALL_PIECE = 0.15    # a piece under 15% of a typical digit's area belongs to a neighbour
ABOVE = 0.5           # two pieces overlapping in x by half the narrower one are one digit (one above the other)
TALL = 0.6            # ... unless both are at least 60% of the line height (two digits side by side)
MIN_PART = 0.2        # a split part is at least 20% of the group's height wide
MIN_HEIGHT = 0.5      # ... and at least half its height tall
MAX_ASPECT = 1.8      # wider than this (width / height) is never one digit
MAX_CANDIDATES = 6    # cuts tried per group when a classifier decides
MIN_SHARE = 0.2       # a cut leaves at least 20% of the piece it splits on each side
SPLIT_LOG_PRIOR = -0.5  # log odds against a split: a group is one digit unless the parts read better
ASPECT_WEIGHT = 0.5   # weight of the width/height prior against the model's log probability
# log(width / height) of MNIST training digits per class 0-9 (bounding box of pixels > 127): mean, std
ASPECT_LOG_MEAN = (-0.119, -1.007, -0.083, -0.262, -0.270, -0.086, -0.360, -0.294, -0.311, -0.433)
ASPECT_LOG_STD = (0.218, 0.489, 0.242, 0.226, 0.229, 0.286, 0.229, 0.230, 0.237, 0.215)


@dataclass(frozen=True)
class Segment:
    """One digit: `mask` is bool, the size of the working image; `box` its bounding box."""

    mask: np.ndarray
    box: tuple[int, int, int, int]


def segment_line(ink: np.ndarray, mask: np.ndarray, classify: Classify | None = None) -> list[Segment]:
    """Segments of the digits in `mask` (bool (H, W)), ordered left to right.

    ink: float32 (H, W) ink strength, used to render candidate parts when `classify` decides splits.
    """
    comps = label_components(mask)
    if len(comps) == 0:
        return []
    keep = [i for i in range(len(comps)) if comps.areas[i] >= SPECK * comps.areas.max()]
    groups = _merge_pieces(comps, keep)
    segments: list[Segment] = []
    for group in groups:
        group_mask = mask_of(comps, group)
        segments.extend(_split(ink, group_mask, union_box(comps.boxes[group]), classify))
    return sorted(segments, key=lambda s: (s.box[1] + s.box[3]) / 2)


def _merge_pieces(comps: Components, keep: list[int]) -> list[list[int]]:
    """Group component indices into digits (step 2).

    First, pieces stacked one above the other join. Then every fragment (shorter than half the line
    or under SMALL_PIECE of a typical digit's area: the bar of a 5, a broken loop) joins the group it
    overlaps most in x, or failing that the nearest one within half a line height; a fragment far
    from everything is noise and is dropped.
    """
    groups = [[i] for i in keep]
    boxes = [tuple(int(v) for v in comps.boxes[i]) for i in keep]
    areas = [int(comps.areas[i]) for i in keep]
    big = [k for k, a in enumerate(areas) if a >= 0.3 * max(areas)]
    line_height = float(np.median([boxes[k][2] - boxes[k][0] for k in big]))
    typical_area = float(np.median([areas[k] for k in big]))

    def join(a: int, b: int) -> None:
        groups[a] += groups[b]
        boxes[a] = union_box([boxes[a], boxes[b]])
        areas[a] += areas[b]
        del groups[b], boxes[b], areas[b]

    def stacked(a, b) -> bool:
        overlap = min(a[3], b[3]) - max(a[1], b[1])
        both_tall = min(a[2] - a[0], b[2] - b[0]) >= TALL * line_height
        return overlap >= ABOVE * min(a[3] - a[1], b[3] - b[1]) and not both_tall

    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            b = next((b for b in range(a + 1, len(groups)) if stacked(boxes[a], boxes[b])), None)
            if b is not None:
                join(a, b)
                merged = True
                break

    def is_fragment(k: int) -> bool:
        return boxes[k][2] - boxes[k][0] < 0.5 * line_height or areas[k] < SMALL_PIECE * typical_area

    while len(groups) > 1:
        fragments = [k for k in range(len(groups)) if is_fragment(k)]
        if not fragments:
            break
        k = min(fragments, key=lambda f: areas[f])
        others = [o for o in range(len(groups)) if o != k]
        overlap = [min(boxes[k][3], boxes[o][3]) - max(boxes[k][1], boxes[o][1]) for o in others]
        gaps = [box_gap(boxes[k], boxes[o]) for o in others]
        best = max(range(len(others)), key=lambda j: (overlap[j] > 0, overlap[j] if overlap[j] > 0 else -gaps[j]))
        if overlap[best] > 0 or gaps[best] <= 0.5 * line_height:
            o = others[best]
            join(min(o, k), max(o, k))
        else:
            del groups[k], boxes[k], areas[k]
    return groups


def _split(ink, group_mask, box, classify) -> list[Segment]:
    """Split a group into digits (step 3), recursively."""
    y0, x0, y1, x1 = box
    height, width = y1 - y0, x1 - x0
    whole = Segment(group_mask, box)
    aspect = width / max(height, 1)
    if aspect <= 0.8 or width < 2 * MIN_PART * height:
        return [whole]
    splits = _valid_splits(group_mask, box, int(MIN_PART * height))
    if not splits:
        return [whole]
    if classify is None:
        if aspect <= 1.3:
            return [whole]
        left, right = splits[0]
    else:
        segments = [whole] + [p for pair in splits for p in pair]
        probs = classify(np.stack([digit_to_28(ink, seg.mask) for seg in segments]))
        scores = np.array([_digit_log_score(seg, p) for seg, p in zip(segments, probs)])
        split_scores = scores[1::2] + scores[2::2] + SPLIT_LOG_PRIOR
        k = int(np.argmax(split_scores))
        if aspect <= MAX_ASPECT and split_scores[k] <= scores[0]:
            return [whole]
        left, right = splits[k]
    return _split(ink, left.mask, left.box, classify) + _split(ink, right.mask, right.box, classify)


def _digit_log_score(segment: Segment, probs: np.ndarray) -> float:
    """How well `segment` reads as one digit: log of the model's top probability plus the log of how
    usual its width / height is for that digit (MNIST's per-class log-normal, relative to its peak)."""
    digit = int(np.argmax(probs))
    score = float(np.log(max(float(probs[digit]), 1e-6)))
    if len(probs) == len(ASPECT_LOG_MEAN):
        y0, x0, y1, x1 = segment.box
        z = (np.log((x1 - x0) / max(y1 - y0, 1)) - ASPECT_LOG_MEAN[digit]) / ASPECT_LOG_STD[digit]
        score -= ASPECT_WEIGHT * 0.5 * float(z) ** 2
    return score


def _valid_splits(group_mask: np.ndarray, box, min_part: int) -> list[tuple[Segment, Segment]]:
    """Up to MAX_CANDIDATES (left, right) splits along top-to-bottom paths, cheapest first.

    Touching or overlapping digits are one connected piece, so a cut must go through the group's
    largest piece (pieces that step 2 joined, like the bar of a 5, are not pulled apart again). The
    path may drift one column per row, so it can pass between digits that overlap in x (a slanted 1
    leaning into a 4); it pays for every ink pixel it crosses. Cuts leaving a sliver are skipped.
    """
    y0, x0, y1, x1 = box
    local = group_mask[y0:y1, x0:x1]
    comps = label_components(local)
    main = comps.labels == int(np.argmax(comps.areas)) + 1
    my0, mx0 = comps.origin
    piece = np.zeros_like(local)
    piece[my0 : my0 + main.shape[0], mx0 : mx0 + main.shape[1]] = main
    piece_cols = np.flatnonzero(piece.any(axis=0))
    lo, hi = max(min_part, int(piece_cols[0]) + 1), min(local.shape[1] - min_part, int(piece_cols[-1]))
    if hi - lo < 1:
        return []
    splits: list[tuple[Segment, Segment]] = []
    for path in _cheapest_paths(local, lo, hi, MAX_CANDIDATES * 2):
        left_of = np.arange(local.shape[1])[None, :] < path[:, None]
        if min((piece & left_of).sum(), (piece & ~left_of).sum()) < MIN_SHARE * piece.sum():
            continue  # the cut must split the main piece itself
        pair = _cut(group_mask, box, left_of)
        if pair is not None:
            splits.append(pair)
            if len(splits) == MAX_CANDIDATES:
                break
    return splits


def _cheapest_paths(local: np.ndarray, lo: int, hi: int, k: int) -> list[np.ndarray]:
    """Up to k cut paths (one column per row, moving at most one column a row) within [lo, hi),
    cheapest first, ending at least 3 columns apart. Cost: 1 per ink pixel crossed, 0.02 per step
    sideways (straight cuts win ties)."""
    h, w = local.shape
    cost = local.astype(np.float32)
    cost[:, :lo] = np.inf
    cost[:, hi:] = np.inf
    total = cost[0].copy()
    moves = np.zeros((h, w), np.int8)
    for y in range(1, h):
        left = np.concatenate([[np.inf], total[:-1]]) + 0.02
        right = np.concatenate([total[1:], [np.inf]]) + 0.02
        options = np.stack([left, total, right])
        choice = np.argmin(options, axis=0)
        total = options[choice, np.arange(w)] + cost[y]
        moves[y] = choice - 1  # -1: came from the left column
    ends: list[int] = []
    for end in np.argsort(total, kind="stable"):
        if not np.isfinite(total[end]) or len(ends) == k:
            break
        if all(abs(int(end) - e) >= 3 for e in ends):
            ends.append(int(end))
    paths = []
    for end in ends:
        path = np.empty(h, np.int64)
        x = end
        for y in range(h - 1, -1, -1):
            path[y] = x
            x += int(moves[y, x]) if y > 0 else 0
        paths.append(path)
    return paths


def _cut(group_mask: np.ndarray, box, left_of: np.ndarray) -> tuple[Segment, Segment] | None:
    """Split the group along a cut (`left_of`: bool, the box's shape, True left of the path); each
    side keeps its main piece (slivers the cut shaved off go). None when a side is empty or a sliver."""
    y0, x0, y1, x1 = box
    local = group_mask[y0:y1, x0:x1]
    out = []
    for side_mask in (local & left_of, local & ~left_of):
        comps = label_components(side_mask)
        if len(comps) == 0:
            return None
        kept = mask_of(comps, np.flatnonzero(comps.areas >= BIG_PIECE * comps.areas.max()))
        rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
        if rows[-1] + 1 - rows[0] < MIN_HEIGHT * (y1 - y0):
            return None  # a sliver (the bar of a 5, a tail) is not a digit
        side = np.zeros_like(group_mask)
        side[y0:y1, x0:x1] = kept
        out.append(Segment(side, (y0 + int(rows[0]), x0 + int(cols[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[-1]) + 1)))
    return out[0], out[1]
