"""One test per preprocessing step, on images the tests draw, plus the whole chain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digitlab.inference import preprocess as P
from inference_helpers import ring_digit


def mnist_like_ring() -> np.ndarray:
    """A float (28, 28) '0' made the MNIST way: longer side 20, centre of mass at (14, 14), strokes
    about 2.6 px wide (MNIST's median)."""
    big = 1.0 - ring_digit(280, radius=0.25, width=0.09).astype(np.float32) / 255  # white on black
    rows, cols = np.flatnonzero(big.max(1) > 0.5), np.flatnonzero(big.max(0) > 0.5)
    crop = big[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return P.center_by_mass(P.resize_longer_side(crop))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of slightly blurred images: the same shape scores ~1 despite half-pixel shifts."""
    from scipy.ndimage import gaussian_filter

    return float(np.corrcoef(gaussian_filter(a, 1).ravel(), gaussian_filter(b, 1).ravel())[0, 1])


# -- step 1 -----------------------------------------------------------------------------------------

def test_exif_orientation_is_applied():
    image = Image.new("L", (40, 20), 255)
    image.paste(0, (0, 0, 5, 5))  # a mark in the top-left corner
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    import io

    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif, quality=95)
    upright = P.apply_exif_orientation(Image.open(buf))
    assert upright.size == (20, 40)
    arr = np.asarray(upright)
    assert arr[:5, -5:].mean() < 60 and arr[:5, :5].mean() > 200  # the mark moved to the top right


# -- step 2 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ink, expected_background", [((10, 10, 20), 255), ((250, 250, 250), 0)])
def test_flatten_alpha_uses_a_background_that_contrasts_with_the_ink(ink, expected_background):
    rgba = np.zeros((30, 30, 4), np.uint8)  # transparent pixels are (0, 0, 0, 0), as apps write them
    rgba[10:20, 12:16, :3] = ink
    rgba[10:20, 12:16, 3] = 255
    flat = np.asarray(P.flatten_alpha(Image.fromarray(rgba)).convert("L"))
    assert flat[0, 0] == expected_background
    assert abs(int(flat[15, 13]) - int(np.mean(ink))) < 10


def test_flatten_alpha_leaves_opaque_images_alone():
    image = Image.fromarray(ring_digit(20))
    assert P.flatten_alpha(image) is image


# -- step 3 -----------------------------------------------------------------------------------------

def test_to_grey_caps_the_working_size_by_area_averaging():
    image = Image.fromarray(ring_digit(400)).resize((3000, 1500))
    grey, scale = P.to_grey(image, max_side=1024)
    assert grey.shape == (512, 1024) and scale == pytest.approx(1024 / 3000)
    assert grey.dtype == np.float32 and 0 <= grey.min() and grey.max() <= 1


# -- step 4 -----------------------------------------------------------------------------------------

def test_polarity_dark_ink_on_white_is_inverted_and_mnist_style_is_not():
    dark = ring_digit(100).astype(np.float32) / 255
    ink, inverted = P.to_ink_polarity(dark)
    assert inverted and ink[50, 50] < 0.1 and ink.max() > 0.9
    ink, inverted = P.to_ink_polarity(1.0 - dark)
    assert not inverted and np.array_equal(ink, (1.0 - dark).astype(np.float32))


def test_polarity_of_a_fine_pen_covering_under_one_percent():
    grey = np.full((400, 400), 0.92, np.float32)
    grey[150:250, 200:202] = 0.1  # a 2 px line: 0.125% of the pixels
    assert P.to_ink_polarity(grey)[1]


def test_polarity_under_a_strong_shadow():
    h = w = 300
    light = np.where(np.arange(w)[None, :] < 170, 1.0, 0.45) * np.ones((h, 1))  # half the page shadowed
    grey = (0.9 * light).astype(np.float32)
    grey[100:200, 60:66] *= 0.1  # dark ink in the light half
    assert P.to_ink_polarity(grey)[1]


# -- step 5 -----------------------------------------------------------------------------------------

def test_suppress_background_cancels_a_gradient_and_keeps_the_ink():
    h = w = 200
    light = np.linspace(1.0, 0.5, w, dtype=np.float32)[None, :].repeat(h, 0)
    paper = 0.9 * light
    grey = paper.copy()
    grey[60:140, 40:46] = paper[60:140, 40:46] * 0.1  # ink in bright light
    grey[60:140, 150:156] = paper[60:140, 150:156] * 0.1  # the same ink in dim light
    ink = P.suppress_background(1.0 - grey)
    assert ink[10:50].max() < 0.08  # paper is background everywhere, bright or dim
    assert ink[100, 42] == pytest.approx(ink[100, 152], abs=0.08) and ink[100, 42] > 0.8


def test_otsu_threshold_splits_two_modes():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.03, 5000), rng.normal(0.8, 0.05, 1000)]).clip(0, 1)
    assert 0.3 < P.otsu_threshold(values) < 0.6


def test_ink_mask_finds_ink_and_says_no_digit_for_blank_and_noise():
    digit = 1.0 - ring_digit(120).astype(np.float32) / 255
    mask, _, reason = P.ink_mask(digit)
    assert reason is None and mask[60, 60] == 0 and mask.sum() > 100
    _, _, reason = P.ink_mask(np.zeros((120, 120), np.float32) + 0.01)
    assert reason.startswith("no digit found: the image is blank")
    noise = np.random.default_rng(1).random((300, 300), dtype=np.float32)
    _, _, reason = P.ink_mask(P.suppress_background(noise))
    assert reason.startswith("no digit found: the image looks like noise")


# -- steps 6-9 --------------------------------------------------------------------------------------

def test_crop_to_ink_keeps_the_box_and_drops_what_is_outside_the_mask():
    ink = np.zeros((50, 60), np.float32)
    ink[10:30, 20:25] = 0.5  # the digit, drawn with a grey pencil
    ink[12, 40] = 0.9  # a speck, not in the mask
    mask = ink == 0.5
    crop, crop_mask = P.crop_to_ink(ink, mask)
    assert crop.shape == (20, 5) and crop_mask.all()
    assert crop.max() == pytest.approx(1.0)  # normalised: the pencil's level becomes full ink


def test_thicken_thin_strokes_widens_only_thin_ones():
    thin = np.zeros((200, 120), np.float32)
    thin[:, 58:60] = 1.0  # 2 px in a 200 px digit: 0.2 px after scaling to 20
    grown = P.thicken_thin_strokes(thin, thin > 0.5)
    scale = 20 / max(grown.shape)
    assert grown.sum() / grown.shape[0] * scale > 1.5  # width after the resize, in px
    bold = np.zeros((40, 30), np.float32)
    bold[:, 10:16] = 1.0
    assert P.thicken_thin_strokes(bold, bold > 0.5) is bold


def test_resize_longer_side_keeps_aspect_and_ink():
    crop = np.zeros((100, 50), np.float32)
    crop[:, 20:30] = 1.0
    small = P.resize_longer_side(crop)
    assert small.shape == (20, 10)
    assert small.sum() == pytest.approx(crop.sum() * (20 / 100) ** 2, rel=0.02)  # area averaging


def test_center_by_mass_puts_the_centre_of_mass_at_14():
    digit = np.zeros((20, 12), np.float32)
    digit[:, :3] = 1.0  # mass on the left edge
    field = P.center_by_mass(digit)
    ys, xs = np.mgrid[0:28, 0:28]
    assert field.shape == (28, 28)
    assert abs((field * xs).sum() / field.sum() - 14) <= 0.5 and abs((field * ys).sum() / field.sum() - 14) <= 0.5


def test_an_mnist_style_image_passes_through_unchanged():
    ring = mnist_like_ring()
    out = P.digit_to_28(ring, P.ink_mask(ring)[0])
    assert np.abs(out - ring).max() < 0.35 and np.corrcoef(out.ravel(), ring.ravel())[0, 1] > 0.97


@pytest.mark.parametrize("width", [0.045, 0.004])  # the same pen as MNIST's, and a fine pen (thickened)
def test_a_small_dark_ring_in_a_big_image_becomes_the_mnist_ring(width):
    image = Image.fromarray(ring_digit(400, radius=0.125, width=width, centre=(0.3, 0.65)))
    ink = P.extract_ink(image)
    assert ink.inverted and ink.reason is None
    out = P.digit_to_28(ink.ink, ink.mask)
    assert similarity(out, mnist_like_ring()) > 0.9
