"""Connected components of an ink mask, and the choice of which ones make up a single digit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SPECK = 0.01        # a component under 1% of the largest one's area is a speck (noise, dust)
NEAR = 0.25         # a piece within 25% of the digit's size from it belongs to it (a broken stroke)
BIG_PIECE = 0.3     # a piece this large (vs the largest) is kept wherever it is: the user drew it
FAINT = 0.6         # a piece whose mean ink is under 60% of the strongest piece's is not the pen's
TEXTURE_HOLES = 10  # a piece near the frame with more holes than this, one per TEXTURE_AREA px of ink or
TEXTURE_AREA = 40   # more, is a surface's grain: a digit's strokes enclose at most 2 (an 8)
NEAR_FRAME = 0.12   # ... near: within 12% of the image's shorter side from the frame
GRAIN_PIECES = 10   # ... so is a piece near the frame with more than this many others around it


@dataclass(frozen=True)
class Components:
    """Components of a mask, labelled inside the mask's bounding box only (a digit is a small part
    of a photo, and labelling costs per pixel).

    labels: int32, 0 = background, 1..n = components, covering shape[:] from `origin` (y, x);
    areas[i], boxes[i] for label i + 1. A box is (y0, x0, y1, x1), end-exclusive, in the full
    mask's pixels; `shape` is the full mask's shape.
    """

    labels: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    origin: tuple[int, int] = (0, 0)
    shape: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.areas)


def label_components(mask: np.ndarray) -> Components:
    """8-connected components of a bool mask (diagonal pixels of a thin stroke stay together)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return Components(np.zeros((0, 0), np.int32), np.zeros(0, np.int64), np.zeros((0, 4), np.int64),
                          (0, 0), mask.shape)
    y0, x0 = int(rows[0]), int(cols[0])
    sub = mask[y0 : rows[-1] + 1, x0 : cols[-1] + 1]
    labels, n = ndimage.label(sub, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    boxes = np.array(
        [(s[0].start + y0, s[1].start + x0, s[0].stop + y0, s[1].stop + x0) for s in ndimage.find_objects(labels)],
        dtype=np.int64,
    ).reshape(n, 4)
    return Components(labels.astype(np.int32, copy=False), areas, boxes, (y0, x0), mask.shape)


def box_gap(a, b) -> int:
    """Chebyshev gap in px between two (y0, x0, y1, x1) boxes; 0 when they touch or overlap."""
    dy = max(a[0] - b[2], b[0] - a[2], 0)
    dx = max(a[1] - b[3], b[1] - a[3], 0)
    return int(max(dy, dx))


def union_box(boxes) -> tuple[int, int, int, int]:
    boxes = np.asarray(boxes).reshape(-1, 4)
    return (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))


def select_digit(comps: Components) -> np.ndarray:
    """Indices of the components that form the one digit of a single-digit image.

    Starts from the largest component and adds, until nothing changes, every non-speck piece close to
    the digit so far (the detached bar of a 5, a 4 drawn in two strokes) and every large piece. Far
    specks stay out, so a dust mark in a corner does not stretch the bounding box.
    """
    if len(comps) == 0:
        return np.zeros(0, dtype=np.int64)
    largest = int(np.argmax(comps.areas))
    kept = {largest}
    box = tuple(comps.boxes[largest])
    order = [i for i in np.argsort(-comps.areas) if comps.areas[i] >= SPECK * comps.areas[largest]]
    changed = True
    while changed:
        changed = False
        size = max(box[2] - box[0], box[3] - box[1])
        for i in order:
            if i in kept:
                continue
            if comps.areas[i] >= BIG_PIECE * comps.areas[largest] or box_gap(comps.boxes[i], box) <= NEAR * size:
                kept.add(int(i))
                box = union_box([box, comps.boxes[i]])
                changed = True
    return np.array(sorted(kept), dtype=np.int64)


def mask_of(comps: Components, indices) -> np.ndarray:
    """Bool mask, the full mask's shape, of the given component indices."""
    out = np.zeros(comps.shape if comps.shape is not None else comps.labels.shape, dtype=bool)
    lut = np.zeros(len(comps) + 1, dtype=bool)
    lut[np.asarray(indices, dtype=np.int64) + 1] = True
    y0, x0 = comps.origin
    h, w = comps.labels.shape
    out[y0 : y0 + h, x0 : x0 + w] = lut[comps.labels]
    return out


def drop_faint(mask: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The mask without pieces much fainter than the pen: float ink (H, W) in [0, 1], bool mask.

    One pen writes a digit at one strength; what the background estimate leaves of a hard shadow's
    edge (a sliver as strong as the shadow is deep) is fainter. A piece is dropped when its mean ink
    is under FAINT times that of the strongest piece among those at least 5% of the largest's area.
    """
    comps = label_components(mask)
    n = len(comps)
    if n < 2:
        return mask
    (y0, x0), (h, w) = comps.origin, comps.labels.shape
    labels = comps.labels.ravel()
    sums = np.bincount(labels, weights=ink[y0 : y0 + h, x0 : x0 + w].ravel(), minlength=n + 1)[1:]
    means = sums / np.maximum(comps.areas, 1)
    strongest = float(means[comps.areas >= 0.05 * comps.areas.max()].max())
    faint = np.flatnonzero(means < FAINT * strongest)
    if faint.size == 0:
        return mask
    return mask & ~mask_of(comps, faint)


def drop_texture(mask: np.ndarray) -> np.ndarray:
    """The mask without textured pieces near the frame: what remains of a table, carpet or fabric
    beyond the paper's edge where remove_border_bands found no whole band to cut (it covers too little
    of the side, or breaks up). Thresholded grain is ink riddled with holes: more than TEXTURE_HOLES,
    at least one per TEXTURE_AREA px; a digit's strokes enclose at most 2, a noisy photo's a pinhole
    or two more. Grain may also break up into a field of pieces: a piece near the frame, not the
    largest, with more than GRAIN_PIECES others (specks too) within its own size of it is part of
    that field (a digit's broken strokes make a few). The mask itself when nothing else would be left.
    """
    h, w = mask.shape
    near = NEAR_FRAME * min(h, w)
    rim = int(near) + 1
    if not (mask[:rim].any() or mask[-rim:].any() or mask[:, :rim].any() or mask[:, -rim:].any()):
        return mask  # no ink near the frame (most images): nothing to label
    comps = label_components(mask)
    oy, ox = comps.origin
    smallest = max(TEXTURE_HOLES, SPECK * comps.areas.max())  # specks are left out downstream anyway
    centres = (comps.boxes[:, :2] + comps.boxes[:, 2:]) / 2.0
    largest = int(np.argmax(comps.areas))
    textured = []
    for i, (y0, x0, y1, x1) in enumerate(comps.boxes):
        if min(y0, x0, h - y1, w - x1) > near or comps.areas[i] < smallest:
            continue
        reach = max(y1 - y0, x1 - x0)
        around = int(np.all(np.abs(centres - centres[i]) <= reach, axis=1).sum()) - 1
        if i != largest and around > GRAIN_PIECES:
            textured.append(i)
            continue
        piece = comps.labels[y0 - oy : y1 - oy, x0 - ox : x1 - ox] == i + 1
        holes = 1 - euler_number(piece)  # one connected piece: 1 - (pieces - holes)
        if holes > TEXTURE_HOLES and comps.areas[i] <= TEXTURE_AREA * holes:
            textured.append(i)
    rest = np.delete(comps.areas, textured)
    if not textured or not (rest >= smallest).any():
        return mask  # what would be left is specks at most
    return mask & ~mask_of(comps, textured)


def euler_number(mask: np.ndarray) -> int:
    """Pieces (8-connected) minus holes of a bool mask, from counts of its 2x2 pixel patterns (Gray's
    bit quads): a few array operations, where filling and labelling the holes costs a pass each."""
    m = np.pad(mask, 1).astype(np.int8)
    a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
    inked = a + b + c + d
    one = int(np.count_nonzero(inked == 1))
    three = int(np.count_nonzero(inked == 3))
    diagonal = int(np.count_nonzero((inked == 2) & (a == d)))
    return (one - three - 2 * diagonal) // 4
