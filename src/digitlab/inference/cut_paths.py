"""Cut paths through touching digits: top-to-bottom paths that cross as little ink as they can.

A path takes one column per row and moves at most one column a row, so it can bend between digits
that overlap in x (a slanted 1 leaning into a 4). Dynamic programming finds, for every column, the
cheapest path ending there (path_costs); anchored_paths joins an upper and a lower half through one
row; cut_paths turns those into the candidate cuts of one component (see digitlab.inference.segment).
"""

from __future__ import annotations

import numpy as np

CUTTABLE = 0.45       # components narrower than 45% of the line height are one digit or part of one
MIN_ATOM = 0.12       # a cut leaves atoms at least 12% of the line height wide
MIN_ATOM_AREA = 0.01  # ... with at least 1% of a line height squared of ink
ANCHORS = (0.0, 0.25, 0.5, 0.75, 1.0)  # rows (fractions of the height) that cut paths pass through
CUT_SPACING = 0.2     # candidate cuts are at least 20% of a line height apart
MAX_CUT_STROKES = 2.0 # a cut crosses at most two strokes' worth of ink


def cheapest_paths(local: np.ndarray, lo: int, hi: int, k: int) -> list[np.ndarray]:
    """Up to k cut paths within [lo, hi) (see path_costs), cheapest first, ending at least 3
    columns apart."""
    total, moves = path_costs(local, lo, hi)
    ends: list[int] = []
    for end in np.argsort(total, kind="stable"):
        if not np.isfinite(total[end]) or len(ends) == k:
            break
        if all(abs(int(end) - e) >= 3 for e in ends):
            ends.append(int(end))
    return [trace_path(moves, end) for end in ends]


def cut_paths(local: np.ndarray, line_height: float, stroke: float) -> list[np.ndarray]:
    """Candidate cuts of one component, left to right: top-to-bottom paths (one column per row,
    moving at most one column a row, so they bend between overlapping digits) crossing at most
    MAX_CUT_STROKES strokes, leaving atoms at least MIN_ATOM of a line height wide and of
    MIN_ATOM_AREA. Paths never cross each other.

    The cheapest path through each column of an anchor row (ANCHORS, from the top to the bottom) is a
    candidate where its cost is a local minimum along that row: anchoring the path at several rows
    offers several cuts per contact region (the cheapest path ending at the bottom alone often bends
    through one digit's loop instead of between two digits touching along a long contact)."""
    h, w = local.shape
    margin = max(2, int(MIN_ATOM * line_height))
    if w < max(2 * margin + 1, CUTTABLE * line_height):
        return []
    spacing = max(2, int(CUT_SPACING * line_height))
    found: list[tuple[float, np.ndarray]] = []
    for row in sorted({min(h - 1, int(f * h)) for f in ANCHORS}):
        total, trace = anchored_paths(local, row, margin, w - margin)
        ends: list[int] = []
        for end in np.argsort(total, kind="stable"):
            if not np.isfinite(total[end]) or total[end] > MAX_CUT_STROKES * stroke:
                break
            window = total[max(0, end - spacing) : end + spacing + 1]
            if total[end] <= window.min() and all(abs(int(end) - e) >= spacing for e in ends):
                ends.append(int(end))
                found.append((float(total[end]), trace(int(end))))
    chosen: list[np.ndarray] = []
    for _, path in sorted(found, key=lambda f: f[0]):
        if all(abs(float(path.mean() - other.mean())) >= spacing for other in chosen):
            chosen.append(path)
    cols = np.arange(w)[None, :]
    min_area = MIN_ATOM_AREA * line_height**2
    paths: list[np.ndarray] = []
    for path in sorted(chosen, key=lambda p: float(p.mean())):
        if paths:
            path = np.maximum(path, paths[-1])  # no crossing: stay right of the previous cut
            before = local & (cols < path[:, None]) & ~(cols < paths[-1][:, None])
        else:
            before = local & (cols < path[:, None])
        after = local & ~(cols < path[:, None])
        if before.sum() >= min_area and after.sum() >= min_area:
            paths.append(path)
    return paths


def anchored_paths(local: np.ndarray, row: int, lo: int, hi: int):
    """(cost of the cheapest top-to-bottom path through each column of `row`, inf outside [lo, hi);
    a function column -> that path)."""
    upper_total, upper_moves = path_costs(local[: row + 1], lo, hi)
    lower_total, lower_moves = path_costs(local[row:][::-1], lo, hi)
    total = upper_total + lower_total - local[row].astype(np.float32)

    def trace(x: int) -> np.ndarray:
        return np.concatenate([trace_path(upper_moves, x), trace_path(lower_moves, x)[::-1][1:]])

    return total, trace


def path_costs(local: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic programming for top-to-bottom paths ending in columns [lo, hi): (cost of the cheapest
    path ending at each column, inf outside; the move (-1, 0, +1) taken into each pixel). Cost: 1
    per ink pixel crossed, 0.02 per step sideways (straight cuts win ties)."""
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
    return total, moves


def trace_path(moves: np.ndarray, end: int) -> np.ndarray:
    """The path (column per row) ending at column `end` of the last row."""
    path = np.empty(moves.shape[0], np.int64)
    x = end
    for y in range(moves.shape[0] - 1, -1, -1):
        path[y] = x
        x += int(moves[y, x]) if y > 0 else 0
    return path
