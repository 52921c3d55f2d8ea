"""A line of handwritten digits -> one mask per digit, left to right.

1. Connected components of the ink mask; specks (dust, noise) are dropped.
2. Pieces of a broken digit are merged: a piece that sits mostly above or below another (the two
   strokes of a 4), or a fragment (short, or small) joins the digit it overlaps or is nearest to.
3. With a classifier (_read_line): each group is over-segmented into atoms along candidate cut
   paths (top to bottom, crossing little ink, bending between overlapping digits; the cheapest paths
   through five rows from the top to the bottom, so a long contact gets several tries); every run of
   up to MAX_ATOMS consecutive atoms is a candidate digit, all classified in one batch, and the
   reading is the best-scoring chain of candidates (dynamic programming): model log-probability
   (weighted by LOG_P_WEIGHT), MNIST's per-class width/height prior (a steep extra cost beyond
   ODD_ASPECT standard deviations: half a 0 is no 6), penalties for short, wide or gapped
   candidates, a cost per stroke that a kept cut crosses, and a per-digit bonus. This fixes over-
   and under-splits alike.
   Without one, a group wider than 1.3x its height is cut at the cheapest path, recursively.

Masks and boxes are in the working image's pixels; boxes are (y0, x0, y1, x1), end-exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from digitlab.inference.components import BIG_PIECE, Components, box_gap, label_components, mask_of, union_box
from digitlab.inference.cut_paths import cheapest_paths, cut_paths
from digitlab.inference.digit28 import digit_to_28, stroke_width
from digitlab.inference.digit_score import box_of, candidate_score

Classify = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> probabilities (N, C)

SPECK = 0.02          # components under 2% of the largest one's area are noise
SMALL_PIECE = 0.15    # a piece under 15% of a typical digit's area belongs to a neighbour
ABOVE = 0.5           # two pieces overlapping in x by half the narrower one are one digit (one above the other)
TALL = 0.6            # ... unless both are at least 60% of the line height (two digits side by side)
MIN_PART = 0.2        # a split part is at least 20% of the group's height wide
MIN_HEIGHT = 0.5      # ... and at least half its height tall
MAX_CANDIDATES = 6    # cuts tried per group without a classifier (the first valid one is kept)
MIN_SHARE = 0.2       # a cut leaves at least 20% of the piece it splits on each side
MAX_ATOMS = 6         # a digit is at most 6 atoms (a 2 or 5 with a long stroke is cut into many)
MAX_WIDTH = 1.8       # ... and at most 1.8 line heights wide (a 5 with a long bar is wide)
CUT_WEIGHT = 1.0      # cost per stroke crossed by a cut the reading keeps
ONE_DIGIT_WIDTH = 1.3 # ink this narrow (width / height) may be one digit (a wide 5 is 1.25): read compares it as one
SIDE_BY_SIDE = 0.85   # ... unless its parts are each this share of its height tall (digits of one height)


@dataclass(frozen=True)
class Segment:
    """One digit: `mask` is bool, the size of the working image; `box` its bounding box. With a
    classifier, also the 28x28 image it was classified as and the classifier's probabilities, so
    that the caller need not prepare and classify it again."""

    mask: np.ndarray
    box: tuple[int, int, int, int]
    image28: np.ndarray | None = None
    probs: np.ndarray | None = None


def segment_line(ink: np.ndarray, mask: np.ndarray, classify: Classify | None = None) -> list[Segment]:
    """Segments of the digits in `mask` (bool (H, W)), ordered left to right.

    ink: float32 (H, W) ink strength, used to render candidate digits for `classify`.
    """
    comps = label_components(mask)
    if len(comps) == 0:
        return []
    keep = [i for i in range(len(comps)) if comps.areas[i] >= SPECK * comps.areas.max()]
    if classify is not None:
        return _read_line(ink, mask, comps, keep, classify)
    groups = _merge_pieces(comps, keep)
    segments: list[Segment] = []
    for group in groups:
        group_mask = mask_of(comps, group)
        segments.extend(_split(group_mask, union_box(comps.boxes[group])))
    return sorted(segments, key=lambda s: (s.box[1] + s.box[3]) / 2)


def ink_aspect(mask: np.ndarray) -> float:
    """Width over height of the non-speck ink's bounding box (0.0 for an empty mask).

    Its pieces need not merge into one group: a 5's detached bar, a 3 drawn in broken strokes and a
    tight crop's pieces are measured together.
    """
    comps = label_components(mask)
    if len(comps) == 0:
        return 0.0
    keep = [i for i in range(len(comps)) if comps.areas[i] >= SPECK * comps.areas.max()]
    y0, x0, y1, x1 = union_box(comps.boxes[keep])
    return (x1 - x0) / max(y1 - y0, 1)


def is_one_digit(mask: np.ndarray) -> bool:
    """Could the ink be one digit: is its non-speck ink no wider than ONE_DIGIT_WIDTH of its height?

    A number is wider; a narrow pair such as "11" is left to the model (see Recognizer.read: one
    digit must be surer than the split reading).
    """
    return 0.0 < ink_aspect(mask) <= ONE_DIGIT_WIDTH


def side_by_side(segments: list[Segment], mask: np.ndarray) -> bool:
    """Are the segments digits written side by side: each at least SIDE_BY_SIDE of the ink's height
    tall? The parts of one digit cut apart (a 5's bar, half a 9's loop) are shorter."""
    rows = np.flatnonzero(mask.any(axis=1))
    height = rows[-1] - rows[0] + 1 if rows.size else 0
    return all(s.box[2] - s.box[0] >= SIDE_BY_SIDE * height for s in segments)


def apart(*segments: Segment) -> bool:
    """Is there a gap, a column without ink of either, between segments next to each other?"""
    spans = sorted((s.box[1], s.box[3]) for s in segments)
    return any(right[0] > left[1] for left, right in zip(spans, spans[1:]))


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


def _split(group_mask, box) -> list[Segment]:
    """Split a group into digits without a classifier (step 3): a group wider than 1.3x its height
    is cut along the cheapest path, recursively."""
    y0, x0, y1, x1 = box
    height, width = y1 - y0, x1 - x0
    if width <= 1.3 * height:
        return [Segment(group_mask, box)]
    splits = _valid_splits(group_mask, box, int(MIN_PART * height))
    if not splits:
        return [Segment(group_mask, box)]
    left, right = splits[0]
    return _split(left.mask, left.box) + _split(right.mask, right.box)


def _valid_splits(group_mask: np.ndarray, box, min_part: int) -> list[tuple[Segment, Segment]]:
    """(left, right) splits along top-to-bottom paths, cheapest first (up to MAX_CANDIDATES).

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
    for path in cheapest_paths(local, lo, hi, MAX_CANDIDATES * 2):
        left_of = np.arange(local.shape[1])[None, :] < path[:, None]
        if min((piece & left_of).sum(), (piece & ~left_of).sum()) < MIN_SHARE * piece.sum():
            continue  # the cut must split the main piece itself
        pair = _cut(group_mask, box, left_of)
        if pair is not None:
            splits.append(pair)
            if len(splits) == MAX_CANDIDATES:
                break
    return splits


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


# -- with a classifier: the best path through an over-segmentation ------------------------------------

@dataclass(frozen=True)
class _Atom:
    """A piece of ink that no digit splits: a component, or the part of one between two cuts."""

    mask: np.ndarray   # bool, the working image's shape
    centre_x: float    # centre of mass: atoms are read in this order
    component: int
    index: int         # its place among its component's atoms, left to right


def _read_line(ink, mask, comps: Components, keep: list[int], classify: Classify) -> list[Segment]:
    """The segments of the best reading of the line (step 3 with a classifier).

    Every run of up to MAX_ATOMS consecutive atoms is a candidate digit, scored by candidate_score; the
    reading is the chain of runs covering all atoms with the highest total score, less the cost of
    the cuts through ink it keeps (dynamic programming over the atoms, left to right).
    """
    line_height = _line_height(comps, keep)
    stroke = _stroke_width(mask)
    atoms: list[_Atom] = []
    cuts: list[tuple[int, int, float]] = []  # (component, index of the atom left of it, strokes crossed)
    for c, group in enumerate(_merge_pieces(comps, keep)):
        pieces, crossed = _atoms_of(mask_of(comps, group), union_box(comps.boxes[group]), line_height, stroke)
        atoms += [_Atom(p, _centre_x(p), c, k) for k, p in enumerate(pieces)]
        cuts += [(c, k, n / stroke) for k, n in enumerate(crossed)]
    atoms.sort(key=lambda a: a.centre_x)
    n = len(atoms)
    spans = [_columns_of(a.mask) for a in atoms]
    runs = [(i, j) for i in range(n) for j in range(i + 1, min(i + MAX_ATOMS, n) + 1)
            if j - i == 1 or _width_of(spans[i:j]) <= MAX_WIDTH * line_height]
    masks = {run: np.logical_or.reduce([a.mask for a in atoms[run[0] : run[1]]]) for run in runs}
    images = [digit_to_28(ink, masks[run]) for run in runs]
    probs = classify(np.stack(images))
    score = {run: candidate_score(masks[run], p, line_height) for run, p in zip(runs, probs)}
    found = {run: (image, p) for run, image, p in zip(runs, images, probs)}
    # Ending a digit between atoms k-1 and k keeps every cut that separates them.
    position = {(a.component, a.index): k for k, a in enumerate(atoms)}
    boundary = np.zeros(n + 1)
    for c, k, strokes in cuts:
        left, right = sorted((position[(c, k)], position[(c, k + 1)]))
        boundary[left + 1 : right + 1] += CUT_WEIGHT * strokes
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    start = np.zeros(n + 1, np.int64)
    for j in range(1, n + 1):
        for i in range(max(0, j - MAX_ATOMS), j):
            if (i, j) in score and best[i] + score[(i, j)] - boundary[i] > best[j]:
                best[j], start[j] = best[i] + score[(i, j)] - boundary[i], i
    segments, j = [], n
    while j > 0:
        run = (int(start[j]), j)
        segments.append(Segment(masks[run], box_of(masks[run]), *found[run]))
        j = run[0]
    return segments[::-1]


def _columns_of(mask: np.ndarray) -> tuple[int, int]:
    """(first, last + 1) column of a mask's ink."""
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(cols[-1]) + 1


def _width_of(spans: list[tuple[int, int]]) -> int:
    """Width in px of the union of atoms with these column spans: a run wider than MAX_WIDTH line
    heights is no digit (and is not classified)."""
    return max(end for _, end in spans) - min(start for start, _ in spans)


def _atoms_of(group_mask: np.ndarray, box, line_height: float, stroke: float) -> tuple[list[np.ndarray], list[int]]:
    """A group cut into atoms along candidate paths: (full-size masks left to right, ink pixels
    each cut crosses)."""
    y0, x0, y1, x1 = box
    local = group_mask[y0:y1, x0:x1]
    paths = cut_paths(local, line_height, stroke)
    cols = np.arange(local.shape[1])[None, :]
    pieces, crossed, left = [], [], np.zeros_like(local)
    for path in paths + [None]:
        left_of = np.ones_like(local) if path is None else cols < path[:, None]
        full = np.zeros_like(group_mask)
        full[y0:y1, x0:x1] = local & left_of & ~left
        pieces.append(full)
        if path is not None:
            crossed.append(int(local[np.arange(len(path)), path].sum()))
        left = left | left_of
    return pieces, crossed


def _line_height(comps: Components, keep: list[int]) -> float:
    """Median height of the line's large components (digits, or touching digits: same height)."""
    areas = comps.areas[keep]
    heights = comps.boxes[keep, 2] - comps.boxes[keep, 0]
    return float(np.median(heights[areas >= 0.3 * areas.max()]))


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of the line's ink in px (at least 1)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return max(stroke_width(crop.astype(np.float32), crop), 1.0)


def _centre_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


