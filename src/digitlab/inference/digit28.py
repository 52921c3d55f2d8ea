"""Steps 6-9 of the preprocessing (see digitlab.inference.preprocess): one digit's ink -> 28x28.

  6. crop_to_ink             the ink's bounding box, grey levels kept, stray marks removed
  9. thicken_thin_strokes    (runs before the resize it protects) widen strokes the resize would erase
  7. resize_longer_side      longer side 20 px, aspect kept, anti-aliased (area averaging)
  8. center_by_mass          into 28x28 with the centre of mass at the field's centre (14, 14)

Arrays are float32 (H, W) in [0, 1], ink high.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

DIGIT_BOX = 20       # MNIST: the ink's longer side
FIELD = 28           # MNIST: the image size
CENTRE = 14.0        # MNIST test set: mean centre of mass is (13.99, 14.01) in pixel indices
MNIST_STROKE = 2.6   # median stroke width of MNIST digits, in px of the 28x28 image
THIN_STROKE = 1.6    # below this (after the resize) a stroke fades to faint grey: thicken it


def _dilate3(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by a 3x3 square (plain slicing: cheaper than scipy on small crops)."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _erode_cross(mask: np.ndarray) -> np.ndarray:
    """Binary erosion by a 3x3 cross; pixels outside the array count as background."""
    padded = np.pad(mask, 1)
    return (mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])


def crop_to_ink(ink: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: (crop, crop_mask) of the mask's bounding box, ink normalised so full strength is 1.

    Only the mask's pixels and a one-pixel rim (the anti-aliased edge) are kept, so a neighbouring
    digit, a speck or a ruled line inside the box does not come along. Raises ValueError on an
    empty mask.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty ink mask")
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    crop_mask = mask[box]
    crop = np.where(_dilate3(crop_mask), ink[box], 0.0).astype(np.float32)
    # Pens and pencils differ in darkness; MNIST's stroke cores are all 1.0.
    inked = crop[crop_mask]
    level = float(np.partition(inked, (3 * (inked.size - 1)) // 4)[(3 * (inked.size - 1)) // 4])
    return np.clip(crop / max(level, 1e-3), 0.0, 1.0).astype(np.float32), crop_mask


def stroke_width(crop: np.ndarray, crop_mask: np.ndarray) -> float:
    """Mean stroke width in px: ink mass over half the boundary length (a ribbon's area / length).

    Reads 2 for anything 2 px wide or thinner; MNIST digits measure 2.6 (median) this way.
    """
    boundary = int(np.count_nonzero(crop_mask & ~_erode_cross(crop_mask)))
    return float(crop.sum()) / max(boundary / 2.0, 1.0)


def thicken_thin_strokes(crop: np.ndarray, crop_mask: np.ndarray, target: int = DIGIT_BOX) -> np.ndarray:
    """Step 9: widen strokes that would be thinner than THIN_STROKE px after resizing to `target`.

    A 2 px pen line in a 400 px digit becomes 0.1 px at MNIST scale: a faint grey trace that a model
    trained on 2-3 px strokes reads poorly. Strokes are grown (anti-aliased, via the distance to the
    ink) to MNIST's median width; the crop grows by the same radius on every side. Others pass as is.
    """
    scale = target / max(crop.shape)
    width = stroke_width(crop, crop_mask)
    if width * scale >= THIN_STROKE:
        return crop
    radius = (MNIST_STROKE / scale - width) / 2.0
    pad = int(np.ceil(radius)) + 1
    grown_mask = np.pad(crop_mask, pad)
    distance = ndimage.distance_transform_edt(~grown_mask)
    grown = np.maximum(np.pad(crop, pad), np.clip(radius + 0.5 - distance, 0.0, 1.0))
    rows, cols = np.flatnonzero(grown.max(axis=1) > 0.5), np.flatnonzero(grown.max(axis=0) > 0.5)
    return grown[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)  # the new ink's box


def resize_longer_side(crop: np.ndarray, target: int = DIGIT_BOX) -> np.ndarray:
    """Step 7: scale so the longer side is `target` px, aspect kept; area averaging when shrinking."""
    h, w = crop.shape
    scale = target / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.BOX if scale < 1 else Image.BILINEAR
    out = Image.fromarray(crop.astype(np.float32)).resize(size, resample)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def center_by_mass(digit: np.ndarray, field: int = FIELD, centre: float = CENTRE) -> np.ndarray:
    """Step 8: place `digit` in a field x field image so its centre of mass lands on (centre, centre).

    Whole-pixel shift, as MNIST did (its centres of mass scatter by +-0.3 px around 14).
    """
    out = np.zeros((field, field), np.float32)
    h, w = digit.shape
    total = float(digit.sum())
    if total > 0:
        cy = float(digit.sum(axis=1) @ np.arange(h)) / total
        cx = float(digit.sum(axis=0) @ np.arange(w)) / total
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    oy, ox = int(np.floor(centre - cy + 0.5)), int(np.floor(centre - cx + 0.5))
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(field, oy + h), min(field, ox + w)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = digit[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


def digit_to_28(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Steps 6, 9, 7, 8 for the digit whose pixels are `mask`: float32 (28, 28) in [0, 1]."""
    crop, crop_mask = crop_to_ink(ink, mask)
    crop = thicken_thin_strokes(crop, crop_mask)
    return center_by_mass(resize_longer_side(crop))
