"""Images framed unlike MNIST: ink touching the edges, low resolution, much or little ink in either
polarity, shadows, printed lines. Each test draws the defect onto a '0' and checks that the digit the
preprocessing hands the model is the same as from a clean image (or, with the shipped model, the answer)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digitlab.inference import preprocess as P
from digitlab.inference.framing import two_level_ink, upsample_small
from digitlab.inference.lines import remove_lines
from inference_helpers import encode, ring_digit


def ink_box(dark: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero((dark < 128).any(1)), np.flatnonzero((dark < 128).any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def prepared(image: np.ndarray | Image.Image) -> np.ndarray | None:
    """The 28x28 digit the predict path makes of an image (None: no digit)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    ink, digit = P.extract_digit(pil)
    return None if digit is None else P.digit_to_28(ink.ink, digit)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.ndimage import gaussian_filter

    return float(np.corrcoef(gaussian_filter(a, 1).ravel(), gaussian_filter(b, 1).ravel())[0, 1])


RING = ring_digit(200, radius=0.3, width=0.08)  # dark ink on white, a margin all round
REFERENCE = prepared(RING)


def tight(ring: np.ndarray = RING) -> np.ndarray:
    return ring[ink_box(ring)]


@pytest.mark.parametrize("edges", [1, 2, 3, 4])
def test_ink_touching_edges_is_found_whole(edges):
    crop = tight()
    pads = [(0 if k < edges else 12) for k in range(4)]  # top, left, bottom, right: no margin on `edges` sides
    image = np.pad(crop, ((pads[0], pads[2]), (pads[1], pads[3])), constant_values=255)
    out = prepared(image)
    assert out is not None
    assert similarity(out, REFERENCE) > 0.9


@pytest.mark.parametrize("side", [8, 12, 16, 20])
def test_low_resolution_tight_crop_reads_as_the_digit(side):
    small = np.asarray(Image.fromarray(tight()).resize((round(side * 0.77), side), Image.LANCZOS))
    out = prepared(small)
    assert out is not None
    assert similarity(out, REFERENCE) > 0.85


def test_upsample_small_is_smooth_and_whole_factor():
    grey = np.zeros((8, 6), np.float32)
    grey[2:6, 2:4] = 1.0
    big, factor = upsample_small(grey)
    assert factor == 8 and big.shape == (64, 48)
    assert 0 < np.count_nonzero((big > 0.05) & (big < 0.95))  # interpolated, not blocks
    same, one = upsample_small(np.zeros((64, 64), np.float32))
    assert one == 1 and same.shape == (64, 64)


@pytest.mark.parametrize("dark_ink", [True, False])
@pytest.mark.parametrize("width, pad, low, high", [(0.02, 100, 0.015, 0.03), (0.08, 0, 0.2, 0.4), (0.2, 0, 0.55, 0.62)])
def test_coverage_2_to_60_percent_either_polarity(dark_ink, width, pad, low, high):
    frame = np.pad(tight(ring_digit(200, radius=0.3, width=width)), pad, constant_values=255)
    coverage = float((frame < 128).mean())
    assert low < coverage < high
    ink = P.extract_ink(Image.fromarray(frame if dark_ink else 255 - frame))
    assert ink.mask is not None, ink.reason
    assert ink.inverted == dark_ink
    assert abs(float(ink.mask.mean()) - coverage) < 0.03


def test_two_level_ink_refuses_noise():
    noise = np.random.default_rng(0).uniform(0, 1, (64, 64)).astype(np.float32)
    assert two_level_ink(noise) is None


def test_shadow_gradient_is_removed_before_thresholding():
    h, w = RING.shape
    yy, xx = np.mgrid[0:h, 0:w] / h
    light = (1.0 - 0.55 * xx) * (1.0 - 0.4 / (1.0 + np.exp(-(yy - 0.5) / 0.05)))  # a ramp and a shadow edge
    image = np.rint(RING * light).astype(np.uint8)
    out = prepared(image)
    assert out is not None and similarity(out, REFERENCE) > 0.9


def lined(ring: np.ndarray, grid: bool = False, slope: float = 0.0, margin: bool = False) -> np.ndarray:
    """The ring on a larger page with printed lines as dark as notebook lines under a phone camera."""
    page = np.full((300, 300), 245.0)
    page[50:250, 50:250] = np.minimum(page[50:250, 50:250], ring)
    yy, xx = np.mgrid[0:300, 0:300]
    lines = np.zeros((300, 300), bool)
    for y0 in range(15, 300, 45):
        lines |= np.abs(yy - y0 - slope * xx) < 1.2
    if grid:
        for x0 in range(10, 300, 40):
            lines |= np.abs(xx - x0 - slope * yy) < 1.2
    if margin:
        lines |= np.abs(xx - 60) < 1.5
    page[lines] = np.minimum(page[lines], 130)
    return page.astype(np.uint8)


@pytest.mark.parametrize("kind", ["ruled", "skewed", "margin", "grid"])
def test_printed_lines_are_removed_and_crossing_strokes_kept(kind):
    image = lined(RING, grid=kind == "grid", slope=0.035 if kind == "skewed" else 0.0, margin=kind == "margin")
    ink = P.extract_ink(Image.fromarray(image))
    assert ink.mask is not None
    outside = ink.mask.copy()
    outside[40:260, 40:260] = False
    assert outside.sum() < 0.01 * ink.mask.sum()  # the lines beyond the digit are gone
    out = prepared(image)
    assert out is not None and similarity(out, REFERENCE) > 0.85


def test_a_tight_crops_bar_is_not_a_printed_line():
    seven = np.zeros((60, 40), bool)
    seven[0:3, :] = True  # the bar spans the whole frame, as in a crop tight to the ink
    for y in range(3, 60):
        x = int(38 - 20 * (y - 3) / 57)
        seven[y, x - 1 : x + 2] = True
    assert np.array_equal(remove_lines(seven), seven)


def test_visible_ink_is_never_blank_and_inkless_stays_no_digit():
    faint = np.full((24, 24), 230, np.uint8)
    faint[3:21, 10:14] = 170  # a faint, low-resolution 1 (contrast 0.24)
    assert P.extract_ink(Image.fromarray(faint)).mask is not None
    for side in (8, 64, 400):
        blank = P.extract_ink(Image.fromarray(np.full((side, side), 240, np.uint8)))
        assert blank.mask is None and "no digit" in blank.reason
    noise = np.random.default_rng(1).integers(0, 256, (200, 200)).astype(np.uint8)
    assert P.extract_ink(Image.fromarray(noise)).mask is None


@pytest.mark.parametrize("case", ["plain", "tight", "8x8", "ruled", "grid", "shadow"])
def test_read_answers_what_predict_answers_on_one_digit(shipped, case):
    images = {
        "plain": RING,
        "tight": tight(),
        "8x8": np.asarray(Image.fromarray(tight()).resize((6, 8), Image.LANCZOS)),
        "ruled": lined(RING, margin=True),
        "grid": lined(RING, grid=True),
        "shadow": np.rint(RING * np.linspace(1.0, 0.45, RING.shape[1])[None, :]).astype(np.uint8),
    }
    data = encode(Image.fromarray(images[case]))
    digit = shipped.predict_one(data).digit
    assert digit == 0
    assert shipped.read(data).number == str(digit)


def on_page(ring: np.ndarray, size: int = 320, at=(60, 70)) -> np.ndarray:
    """The ring on a larger white page, float grey in [0, 1]."""
    page = np.ones((size, size), np.float32)
    page[at[0] : at[0] + ring.shape[0], at[1] : at[1] + ring.shape[1]] = ring / 255.0
    return page


def photographed(grey: np.ndarray, seed: int = 0) -> np.ndarray:
    """Sensor noise and JPEG compression, as a phone delivers it: uint8."""
    from io import BytesIO

    noisy = grey + np.random.default_rng(seed).normal(0, 0.02, grey.shape)
    buf = BytesIO()
    Image.fromarray(np.rint(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(buf, format="JPEG", quality=75)
    return np.asarray(Image.open(buf).convert("L"))


def digit_only(image: np.ndarray, box=(50, 60, 270, 280)) -> None:
    """The mask holds the ring and nothing beyond its neighbourhood; the 28x28 is the ring's."""
    ink = P.extract_ink(Image.fromarray(image))
    assert ink.mask is not None, ink.reason
    outside = ink.mask.copy()
    outside[box[0] : box[2], box[1] : box[3]] = False
    assert outside.sum() < 0.01 * ink.mask.sum()
    out = prepared(image)
    assert out is not None and similarity(out, REFERENCE) > 0.9


@pytest.mark.parametrize("angle, depth, share", [(0.3, 0.45, 0.4), (2.0, 0.3, 0.6), (4.0, 0.55, 0.3)])
def test_hard_shadow_edge_across_the_paper_is_not_ink(angle, depth, share):
    """A sharp shadow (a hand, a phone) darkens part of the paper: two flat paper levels, not one."""
    page = on_page(RING)
    yy, xx = np.mgrid[0:320, 0:320].astype(np.float32)
    signed = np.cos(angle) * (xx - 160) + np.sin(angle) * (yy - 160)
    shadowed = signed > np.quantile(signed, 1 - share)
    digit_only(photographed(page * np.where(shadowed, 1 - depth, 1.0)))


@pytest.mark.parametrize("sides", [("top",), ("left",), ("top", "right"), ("bottom", "left")])
def test_table_beyond_the_papers_edge_is_not_ink(sides):
    """The darker, textured table shows beyond the paper's skewed edge at one border or two."""
    page = on_page(RING)
    yy, xx = np.mgrid[0:320, 0:320].astype(np.float32)
    table = np.zeros((320, 320), bool)
    for side in sides:
        across = {"top": yy, "bottom": 319 - yy, "left": xx, "right": 319 - xx}[side]
        along = xx if side in ("top", "bottom") else yy
        table |= across < 30 + 0.1 * (along - 160)  # 14 to 46 px deep: ~6 degrees of skew
    texture = np.clip(0.3 + 0.08 * np.random.default_rng(1).standard_normal((320, 320)), 0, 1)
    digit_only(photographed(np.where(table, texture, page)))


@pytest.mark.parametrize("grain", [0.1, 0.2])
def test_grainy_table_left_near_the_frame_is_not_a_digit(shipped, grain):
    """A patch of table near the frame that no band along a side covers (the paper's corner lies inside
    the photo): its thresholded grain is riddled with holes, and neither predict nor read takes it in."""
    page = on_page(RING)
    texture = np.clip(0.4 + grain * np.random.default_rng(3).standard_normal((320, 320)), 0, 1)
    patch = np.zeros((320, 320), bool)
    patch[20:140, 12:44] = True  # clear of the frame by 12 px, beside the digit
    data = encode(Image.fromarray(photographed(np.where(patch, texture, page))))
    assert shipped.predict_one(data).digit == 0
    assert shipped.read(data).number == "0"


def test_a_tight_crops_bar_along_one_side_is_not_a_table():
    seven = np.full((120, 90), 255, np.uint8)
    seven[0:14, :] = 0  # the bar runs along the whole top, as in a crop tight to the ink
    for y in range(14, 120):
        x = int(88 - 60 * (y - 14) / 106)
        seven[y, max(0, x - 6) : x + 6] = 0
    ink = P.extract_ink(Image.fromarray(seven))
    assert ink.mask is not None
    assert ink.mask[:10].mean() > 0.9  # the bar is ink


def test_a_sevens_bar_touching_the_top_of_a_photo_is_not_a_table():
    page = np.full((320, 320), 0.9, np.float32)
    page[0:30, 110:230] = 0.1  # the bar, cut by the photo's top edge, far from both corners
    for y in range(30, 200):
        x = int(220 - 60 * (y - 30) / 170)
        page[y, x - 12 : x + 12] = 0.1
    light = np.linspace(1.0, 0.7, 320)[None, :]  # uneven light: the photo path
    ink = P.extract_ink(Image.fromarray(photographed(page * light)))
    assert ink.mask is not None
    assert ink.mask[5:25, 120:220].mean() > 0.9  # the bar is ink


@pytest.mark.parametrize("angle, depth", [(0.3, 0.45), (4.0, 0.5)])
def test_hard_shadow_edge_through_a_grey_digit_is_not_ink(angle, depth):
    """Grey ink (a pencil, a worn pen) with a sharp shadow's edge across it: the smooth background
    estimate cannot follow the edge, and the shadowed paper beside it must not join the digit."""
    from scipy import ndimage

    page = 0.85 - 0.6 * (1.0 - on_page(RING))  # paper at 0.85, ink at 0.25
    yy, xx = np.mgrid[0:320, 0:320].astype(np.float32)
    signed = np.cos(angle) * (xx - 160) + np.sin(angle) * (yy - 160)
    image = photographed(page * (1.0 - depth / (1.0 + np.exp(-signed))))
    ink, digit = P.extract_digit(Image.fromarray(image))
    assert digit is not None
    near_ring = ndimage.binary_dilation(on_page(RING) < 0.5, iterations=4)
    assert (digit & ~near_ring).sum() < 0.02 * (digit & near_ring).sum()
    assert similarity(P.digit_to_28(ink.ink, digit), REFERENCE) > 0.9


def test_a_shadow_over_half_the_photo_is_not_taken_for_a_tight_crops_ink():
    """Two grey levels, the darker touching the frame along a side: a tight crop's ink or a shadow?
    Ink is strokes; a shadow is a region far deeper than any stroke."""
    page = 0.85 - 0.6 * (1.0 - on_page(RING, at=(110, 60)))
    yy = np.mgrid[0:320, 0:320][0]
    image = photographed(page * np.where(yy < 100 + 0.4 * np.mgrid[0:320, 0:320][1], 0.55, 1.0))
    assert two_level_ink(image.astype(np.float32) / 255.0) is None
    out = prepared(image)
    assert out is not None and similarity(out, REFERENCE) > 0.85
