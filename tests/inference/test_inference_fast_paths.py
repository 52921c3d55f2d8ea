"""The speed paths of single-image inference give what the plain paths give: coarse-to-fine digit
extraction, uint8 alpha flattening, `reduce` in to_grey, the torch backend's inference copy, and the
array shortcuts of the background, statistics and line steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from digitlab.inference import preprocess as P
from inference_helpers import ring_digit


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of blurred images, best over whole-pixel shifts of up to 1 px (centring by mass
    rounds to whole pixels, as MNIST did: a symmetric ring may land half a pixel either way)."""
    from scipy.ndimage import gaussian_filter

    a, b = gaussian_filter(a, 1), gaussian_filter(b, 1)
    return max(float(np.corrcoef(np.roll(a, (dy, dx), (0, 1)).ravel(), b.ravel())[0, 1])
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def fine_28(image) -> np.ndarray:
    from digitlab.inference.components import label_components, mask_of, select_digit

    ink = P.extract_ink(image)
    comps = label_components(ink.mask)
    return P.digit_to_28(ink.ink, mask_of(comps, select_digit(comps)))


@pytest.mark.parametrize("width", [0.1, 0.06, 0.045, 0.004])  # bold to a 1.6 px pen line
def test_a_big_digit_is_read_at_the_coarse_scale_and_matches_the_full_scale(width):
    image = Image.fromarray(ring_digit(400, radius=0.3, width=width))
    ink, digit = P.extract_digit(image)
    assert ink.ink.shape == (200, 200) and digit.shape == (200, 200)  # reduced 2x: a quarter of the work
    assert similarity(P.digit_to_28(ink.ink, digit), fine_28(image)) > 0.98


@pytest.mark.parametrize("why, kwargs", [
    ("small", dict(radius=0.04, width=0.02)),                   # 32 px tall: 16 px when reduced
    ("touches the frame", dict(radius=0.3, width=0.06, centre=(0.5, 0.25))),  # cut by the left edge
])
def test_small_or_cut_digits_fall_back_to_the_full_scale(why, kwargs):
    image = Image.fromarray(ring_digit(400, **kwargs))
    ink, digit = P.extract_digit(image)
    assert ink.ink.shape == (400, 400) and digit is not None, why
    assert similarity(P.digit_to_28(ink.ink, digit), fine_28(image)) > 0.999


def test_the_coarse_pass_alone_is_there_for_a_caller_that_ran_the_full_scale():
    ink, digit = P.extract_digit(Image.fromarray(ring_digit(400, radius=0.3, width=0.06)), full_scale=False)
    assert ink.ink.shape == (200, 200) and digit is not None
    ink, digit = P.extract_digit(Image.fromarray(ring_digit(400, radius=0.04, width=0.02)), full_scale=False)
    assert ink.ink.shape == (200, 200) and digit is None  # too small at the coarse scale: not tried again
    assert P.extract_digit(Image.fromarray(ring_digit(300, radius=0.3, width=0.06)), full_scale=False) == (None, None)


def test_no_digit_is_reported_with_the_reason():
    ink, digit = P.extract_digit(Image.new("L", (400, 400), 240))
    assert digit is None and "blank" in ink.reason


@pytest.mark.parametrize("light_ink", [False, True])
def test_flatten_alpha_matches_the_float_formula(light_ink):
    rng = np.random.default_rng(light_ink)
    rgba = np.zeros((64, 80, 4), np.uint8)
    rgba[..., :3] = rng.integers(200, 256, (64, 80, 3)) if light_ink else rng.integers(0, 60, (64, 80, 3))
    rgba[..., 3] = rng.integers(0, 256, (64, 80))
    la = np.asarray(Image.fromarray(rgba).convert("LA"), np.float64) / 255
    background = 0.0 if light_ink else 1.0
    expected = (la[..., 0] * la[..., 1] + background * (1 - la[..., 1])) * 255
    got = np.asarray(P.flatten_alpha(Image.fromarray(rgba)), np.float64)
    assert np.abs(got - expected).max() <= 1.01


def test_to_grey_reduce_matches_area_averaging():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400), np.uint8))
    grey, scale = P.to_grey(image, max_side=200)  # an integer factor: Image.reduce
    box = np.asarray(image.resize((200, 150), Image.BOX), np.float32) / 255
    assert grey.shape == (150, 200) and scale == 0.5 and np.abs(grey - box).max() <= 1.01 / 255


def test_torch_backend_matches_the_model_and_restores_the_thread_count():
    import torch

    from digitlab.inference.recognizer import TorchBackend
    from digitlab.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("fast").eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so that folding them matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    backend = TorchBackend(model)
    assert backend.channels_last and backend.fast is not model
    x = np.random.default_rng(0).random((40, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(x).unsqueeze(1)), 1).numpy()
    threads = torch.get_num_threads()
    assert np.abs(backend(x) - expected).max() < 1e-5  # a large batch
    assert np.abs(backend(x[:1]) - expected[:1]).max() < 1e-5  # a small one, on one thread
    assert torch.get_num_threads() == threads
    assert all(p.is_contiguous() for p in model.parameters())  # the model itself is untouched


BOUNDED = settings(max_examples=120, derandomize=True, deadline=None)


@pytest.mark.usefixtures("ieee_floats")  # hypothesis draws floats only where subnormals exist
@BOUNDED
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(8, 120), w=st.integers(8, 120),
       lines=st.integers(0, 3), density=st.floats(0.0, 0.3))
def test_the_line_precheck_never_hides_a_line_the_projections_find(seed, h, w, lines, density):
    from digitlab.inference.lines import SLOPES, _bands, _may_hold_a_line

    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < density * rng.random()  # specks of any density
    for _ in range(lines):  # skewed lines, some broken, some short of LINE_SPAN
        slope, y0 = rng.choice(SLOPES), rng.uniform(0, h)
        xs = np.arange(int(rng.uniform(0.4, 1.0) * w))
        ys = np.clip(np.rint(y0 + slope * xs), 0, h - 1).astype(int)
        keep = rng.random(xs.size) < rng.uniform(0.6, 1.0)
        mask[ys[keep], xs[keep]] = True
    for m in (mask, mask.T):
        ys, xs = np.nonzero(m)
        if not _may_hold_a_line(m):
            assert _bands(ys, xs, m.shape[1], m.shape[0]) == []


def test_a_ruled_line_passes_the_line_precheck_and_a_digit_does_not():
    from digitlab.inference.lines import _may_hold_a_line

    mask = ring_digit(200, radius=0.25, width=0.06) < 128  # a dark ring on white: about half the width
    assert not _may_hold_a_line(mask) and not _may_hold_a_line(mask.T)
    mask[120, 5:195] = True  # a ruled line across the page, skewed by a pixel
    mask[121, 100:195] = True
    assert _may_hold_a_line(mask) and not _may_hold_a_line(mask.T)


@pytest.mark.parametrize("shape", [(200, 200), (37, 401), (1, 5), (5, 1), (2, 2), (1, 1)])
def test_mean3x3_is_scipys_uniform_filter(shape):
    from digitlab.inference.noise import mean3x3

    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    got = mean3x3(image)
    assert got.dtype == np.float32 and got.shape == shape
    assert np.abs(got - ndimage.uniform_filter(image, 3, mode="nearest")).max() < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantiles_are_the_histograms(dtype):
    from digitlab.inference.noise import quantiles

    rng = np.random.default_rng(0)
    values = (rng.random((150, 170)) * 1.4 - 0.2).astype(dtype)  # out-of-range values clip to the ends
    bins, qs = 4096, [0.0, 0.1, 0.5, 0.9, 1.0]
    index = np.clip(np.floor(values.astype(np.float64) * (bins - 1) + 0.5), 0, bins - 1).astype(int)
    cdf = np.cumsum(np.bincount(index.ravel(), minlength=bins)) / values.size
    assert np.array_equal(quantiles(values, qs), np.searchsorted(cdf, qs) / (bins - 1))
    assert np.abs(quantiles(values, [0.5])[0] - np.clip(np.median(values), 0, 1)) < 2 / bins


@pytest.mark.parametrize("shape, size", [((200, 200), (208, 208)), ((13, 7), (13, 9)), ((5, 5), (5, 5))])
def test_edge_padding_is_numpys(shape, size):
    from digitlab.inference.background import _pad_edge

    v = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = np.pad(v, ((0, size[0] - shape[0]), (0, size[1] - shape[1])), mode="edge")
    assert np.array_equal(_pad_edge(v, *size), expected)


def test_ink_is_computed_in_place_the_same():
    from digitlab.inference.background import _ink

    rng = np.random.default_rng(0)
    v, b = rng.random((50, 60), dtype=np.float32), rng.random((50, 60), dtype=np.float32)
    expected = np.clip((v - b) / np.maximum(1.0 - b, 0.05), 0.0, 1.0).astype(np.float32)
    assert np.array_equal(_ink(v, b), expected)
    assert np.array_equal(_ink(v, np.float32(0.3)), np.clip((v - 0.3) / np.float32(0.7), 0, 1).astype(np.float32))
