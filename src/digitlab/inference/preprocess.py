"""A user's image -> a 28x28 digit made the way MNIST was made. One pure function per step.

MNIST digits are white ink on black, the ink's bounding box scaled (with anti-aliasing) so that its
longer side is 20 px, then placed in a 28x28 field with the centre of mass at the centre. A phone
photo of a digit on paper is none of that. The steps, in order:

  1. apply_exif_orientation  the camera's rotation flag
  2. flatten_alpha           transparency onto a background that contrasts with the ink
  3. to_grey                 float grey in [0, 1] (16-bit and CMYK converted properly), capped size
  4. to_ink_polarity         invert when the ink is dark on a light background -> ink is high
  5. suppress_background     flat-field the lighting (shadows, gradients) -> ink strength; then
     ink_mask / find_ink      Otsu threshold on it, with a "no digit here" test (blank, noise)
  6. crop_to_ink             the ink's bounding box, grey levels kept, stray marks removed
  9. thicken_thin_strokes    (runs before the resize it protects) widen strokes the resize would erase
  7. resize_longer_side      longer side 20 px, aspect kept, anti-aliased (area averaging)
  8. center_by_mass          into 28x28 with the centre of mass at the field's centre (14, 14)

`extract_ink` runs 1-5 (shared with multi-digit reading) and `digit_to_28` runs 6-9 for one digit
(steps 1-3 are in digitlab.inference.grey and 6-9 in digitlab.inference.digit28, imported here).
Arrays are float32, (H, W), values in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from digitlab.inference.background import estimate_background, ink_both_ways, suppress_background  # noqa: F401
from digitlab.inference.components import drop_faint, drop_texture, label_components, mask_of, select_digit
# Steps 6-9 live in digit28, and steps 1-3 in grey; they are part of this module's API.
from digitlab.inference.digit28 import (  # noqa: F401
    CENTRE, DIGIT_BOX, FIELD, center_by_mass, crop_to_ink, digit_to_28, resize_longer_side, stroke_width,
    thicken_thin_strokes,
)
from digitlab.inference.framing import (  # noqa: F401 (otsu_threshold is part of this module's API)
    LOW_RES_SEPARATION, MIN_SEPARATION, otsu_threshold, two_level_ink, upsample_small,
)
from digitlab.inference.grey import WORK_SIZE, apply_exif_orientation, flatten_alpha, to_grey  # noqa: F401
from digitlab.inference.lines import remove_border_bands, remove_lines
from digitlab.inference.noise import block_reduce, mean3x3, pixel_noise, quantiles, robust_sigma

COARSE_SIDE = 200    # single digits: first try at about this size (see extract_digit)
COARSE_MIN_BOX = 40  # ... kept when the digit is 2x the 20 px it ends at (bench/user_images: 99.25%,
                     # as at full size; a 256 px coarse image lost photos of small digits)
MIN_CONTRAST = 0.2   # ink must be this much darker (or lighter) than the paper, as a fraction
MIN_SNR = 8.0        # ... and stand this many noise standard deviations above the background
NOISE_K = 4.0        # pixels under median + 4 sigma are background noise
CLEAN = 0.01         # pixel noise sigma below which the mask needs no smoothing (scans, screenshots)
NOISY = 0.05         # noise sigma (of the 3x3 mean) above which an inkless image is "noise", not "blank"
DARK_INK_BIAS = 1.8  # under uneven light, dark ink unless light ink leaves 1.8x less "ink"
THUMB = 200          # ... judged on the image itself up to this size (a 400 px image's coarse pass) ...
THUMB_SIDE = 192     # ... and on a thumbnail this size of a larger one
MAX_INK_FRACTION = 0.5  # ink covers less of the image than the background does
PAPER_TOLERANCE = 0.06  # a flat background's paper is within 0.06 of its median ...
PAPER_BLOCKS = 0.9      # ... in 90% of the blocks (the rest lie inside bold strokes)


@dataclass(frozen=True)
class InkImage:
    """The result of steps 1-5 on a working copy of the image.

    ink: float32 (H, W) in [0, 1], 0 = background, 1 = full-strength ink (the MNIST polarity).
    mask: bool (H, W), the thresholded ink; None when no digit was found (`reason` says why).
    scale: working pixels per input pixel (< 1 when the input's longer side is over WORK_SIZE, > 1
    when it is under framing.LOW_RES and was upsampled).
    """

    ink: np.ndarray
    mask: np.ndarray | None
    threshold: float
    scale: float
    inverted: bool
    reason: str | None = None


# -- steps 4-5: polarity and background ---------------------------------------------------------------

def paper_level(grey: np.ndarray) -> tuple[float, bool]:
    """(median grey level, flat): is the background one flat level (a scan, a screenshot, a drawing
    app) rather than a photo's uneven light? Flat: under 10% of the pixels lie between 0.04 and 0.25
    from the median, i.e. are neither paper nor ink, and the paper is that level all over the frame
    (see `_one_paper_level`: a hard shadow is two flat levels). From every other pixel of large images."""
    sample = grey[::2, ::2] if grey.size > 40_000 else grey
    median = float(quantiles(sample, [0.5])[0])
    deviation = np.abs(sample - median)
    flat = float(np.mean((deviation > 0.04) & (deviation < 0.25))) < 0.1
    return median, flat and _one_paper_level(sample, median)


def _one_paper_level(grey: np.ndarray, median: float, grid: int = 8) -> bool:
    """Is the paper at the median level in nearly every block of a grid x grid lattice? Each block's
    lightest pixel is its paper under dark ink, its darkest under light ink; strokes fill a few blocks
    at most, a shadow or the table beyond the paper's edge fills many."""
    h, w = grey.shape
    block = max(1, min(h, w) // grid)
    gh, gw = h // block, w // block
    tiles = grey[: gh * block, : gw * block]
    return any(float(np.mean(np.abs(block_reduce(tiles, block, reduce) - median) < PAPER_TOLERANCE)) >= PAPER_BLOCKS
               for reduce in (np.maximum, np.minimum))


def to_ink_polarity(grey: np.ndarray, paper: tuple[float, bool] | None = None) -> tuple[np.ndarray, bool]:
    """Step 4: (ink-high image, inverted). Inverts when the ink is darker than the paper.

    With a flat background (see `paper_level`, passed in as `paper` or computed) the median is the
    paper, and the ink is the side holding more mass beyond 0.1 from it (a fine pen may cover under 1%
    of the image, so percentiles would miss it). Under uneven light (a photo) the median may be
    shadowed paper, so the ink is found locally: see `_darker_locally`.
    """
    median, flat = paper if paper is not None else paper_level(grey)
    if flat:
        dark = float(np.clip(median - grey - 0.1, 0, None).sum())
        light = float(np.clip(grey - median - 0.1, 0, None).sum())
        inverted = dark >= light  # a tie (a blank image) says nothing: dark ink is the common case
    else:
        inverted = _darker_locally(grey)
    return ((1.0 - grey) if inverted else grey).astype(np.float32), inverted


def _darker_locally(grey: np.ndarray, thumb: int | None = None) -> bool:
    """True when the ink is darker than the paper around it (ink on paper), False when lighter (chalk).

    Ink is sparse strokes on a smooth background. On the image up to THUMB px, else on a THUMB_SIDE
    px thumbnail, the background is suppressed (step 5) under both hypotheses: with the right one
    the ink strength is the strokes alone; with the wrong one it is the paper around them. The
    hypothesis with less ink mass wins, with a bias (DARK_INK_BIAS) towards dark ink, the common case.
    """
    thumb = THUMB if thumb is None else thumb
    small = Image.fromarray(grey.astype(np.float32))
    if max(small.size) > thumb:
        factor = THUMB_SIDE / max(small.size)
        small = small.resize((max(1, round(small.width * factor)), max(1, round(small.height * factor))), Image.BOX)
    g = np.asarray(small, dtype=np.float32)
    return _dark_ink_wins(suppress_background(1.0 - g, shadow_edges=False), suppress_background(g, shadow_edges=False))


def _dark_ink_wins(dark: np.ndarray, light: np.ndarray) -> bool:
    """Given the ink strength under both hypotheses: is the ink dark? Bold strokes make the two
    masses close; photos of light ink on a dark surface are rare, so dark ink wins unless it leaves
    clearly more "ink" (measured on rendered MNIST photos: dark-ink scenes score up to 1.65)."""
    return float(dark.sum()) <= DARK_INK_BIAS * float(light.sum())


def ink_mask(ink: np.ndarray) -> tuple[np.ndarray | None, float, str | None]:
    """Step 5b: (mask, threshold, reason); mask is None when the image holds no digit.

    The threshold is Otsu's, computed among the pixels that stand out of the background: above the
    median by NOISE_K pixel-noise sigmas and by 3 robust sigmas of the image (leftover lighting). Plain Otsu over the whole image fails on a small
    digit in a large noisy photo: with 99.7% background it splits the noise instead of the ink.
    No digit: the ink is too faint (a blank page), does not stand out of the noise enough (uniform
    noise, a texture), or covers most of the image.
    """
    sigma = pixel_noise(ink)
    if sigma > CLEAN:  # a 3x3 mean divides white noise by 3; strokes >= 2 px keep their level
        smooth, sigma = mean3x3(ink), sigma / 3.0
    else:
        smooth = ink
    sigma = max(sigma, 1.0 / 255)
    sample = smooth[::2, ::2] if smooth.size > 40_000 else smooth
    median = float(quantiles(sample, [0.5])[0])
    # Above the noise, and above what is left of the lighting (slow, so absent from `sigma`).
    floor = median + max(NOISE_K * sigma, 3.0 * robust_sigma(sample))
    candidates = smooth[smooth > floor]
    if candidates.size == 0:
        kind = "looks like noise" if sigma > NOISY else "is blank"
        return None, floor, f"no digit found: the image {kind}"
    t = max(otsu_threshold(candidates), floor)
    mask = smooth > t
    if not mask.any():
        return None, t, "no digit found: the image is blank"
    contrast = float(ink[mask].mean()) - median  # the raw ink: a 3x3 mean would dim a fine pen's line
    if contrast < MIN_CONTRAST:
        return None, t, f"no digit found: the image is blank (ink contrast {contrast:.2f} < {MIN_CONTRAST})"
    if contrast < MIN_SNR * sigma or mask.mean() > MAX_INK_FRACTION:
        return None, t, f"no digit found: the image looks like noise or texture (contrast/noise {contrast / sigma:.1f})"
    return mask, t, None


def extract_ink(image, max_side: int = WORK_SIZE) -> InkImage:
    """Steps 1-5 on a PIL image (as returned by decode.load_image)."""
    return _ink_of(flatten_alpha(apply_exif_orientation(image)), max_side)


def _ink_of(image, max_side: int) -> InkImage:
    """Steps 3-5 on an upright image without alpha, then printed lines out of the mask.

    A low-resolution image is upsampled and read as a two-level scan first (see
    digitlab.inference.framing); so is any image the photo path finds no digit in, or too much
    ink: a digit cropped tight to its ink covers so much of the frame that the median is ink.
    """
    grey, scale = to_grey(image, max_side)
    grey, factor = upsample_small(grey)
    scale *= factor
    if factor > 1 and (framed := _two_level(grey, scale, LOW_RES_SEPARATION)) is not None:
        return framed
    median, flat = paper_level(grey)
    if abs(_border_median(grey) - median) > MIN_CONTRAST / 2 and (framed := _two_level(grey, scale)) is not None:
        return framed  # the median is ink, not paper: the ink covers much of the frame
    if flat or max(grey.shape) > THUMB:
        v, inverted = to_ink_polarity(grey, (median, flat))
        ink = suppress_background(v, ((1.0 - median) if inverted else median) if flat else None)
    else:  # _darker_locally's thumbnail is the image itself: compare there, then the winner's ink
        dark, light = ink_both_ways(1.0 - grey), ink_both_ways(grey)
        inverted = _dark_ink_wins(dark[0], light[0])
        ink = (dark if inverted else light)[1]()
    mask, t, reason = ink_mask(ink)
    if mask is None:
        framed = _two_level(grey, scale)
        if framed is not None:
            return framed
        return InkImage(ink=ink, mask=None, threshold=t, scale=scale, inverted=inverted, reason=reason)
    mask = remove_lines(drop_texture(remove_border_bands(drop_faint(mask, ink))))
    return InkImage(ink=ink, mask=mask, threshold=t, scale=scale, inverted=inverted)


def _border_median(grey: np.ndarray) -> float:
    """Median of the frame's outermost pixels: the paper, even when a tight crop's ink touches them."""
    return float(np.median(np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])))


def _two_level(grey: np.ndarray, scale: float, separation: float = MIN_SEPARATION) -> InkImage | None:
    found = two_level_ink(grey, separation, upsampled=scale > 1)
    if found is None:
        return None
    ink, mask, inverted = found
    # Printed lines are a photo's: on an upsampled few-pixel image the straight sides of a 0 would be "lines".
    mask = mask if scale > 1 else remove_lines(remove_border_bands(mask))
    return InkImage(ink=ink, mask=mask, threshold=0.5, scale=scale, inverted=inverted)


def extract_digit(image, full_scale: bool = True) -> tuple[InkImage | None, np.ndarray | None]:
    """Steps 1-5 and the one digit's pixels, coarse to fine: (InkImage, bool digit mask or None).

    A digit that ends 20 px tall needs far fewer pixels than a photo has, and every full-image step
    costs per pixel. So the image is first reduced by an integer factor to about COARSE_SIDE px; when
    the digit found there is at least COARSE_MIN_BOX px long, clear of the frame and its strokes solid,
    that is the answer (a 400x400 image: a quarter of the pixels). Otherwise (a small digit, a fine
    pen in a big photo, no digit found) the steps run again at WORK_SIZE. None: no digit (see reason).
    full_scale=False: the coarse pass alone, for a caller that has run the WORK_SIZE steps already
    (extract_ink) and found nothing; (None, None) when the image is too small for a coarse pass.
    """
    image = flatten_alpha(apply_exif_orientation(image))
    factor = max(image.size) // COARSE_SIDE
    sides = ([max(image.size) // factor] if factor >= 2 else []) + ([WORK_SIZE] if full_scale else [])
    ink = None
    for side in sides:
        ink = _ink_of(image, side)
        if ink.mask is None:
            continue
        comps = label_components(ink.mask)
        digit = mask_of(comps, select_digit(comps))
        if side == WORK_SIZE or _resolved(ink.ink, digit):
            return ink, digit
    return ink, None


def _resolved(ink: np.ndarray, digit: np.ndarray) -> bool:
    """Is the digit big and solid enough at this scale for the 28x28 to come out as at full scale?

    A "digit" touching the frame is suspect too: on a coarse photo it is often an edge shadow that
    the background estimate could not follow.
    """
    if digit[0].any() or digit[-1].any() or digit[:, 0].any() or digit[:, -1].any():
        return False
    crop, crop_mask = crop_to_ink(ink, digit)
    # stroke_width reads 2 for any line up to 2 px wide; under 2 means a faint, broken line
    return max(crop.shape) >= COARSE_MIN_BOX and stroke_width(crop, crop_mask) >= 2.0
