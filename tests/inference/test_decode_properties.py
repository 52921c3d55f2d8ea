"""Property tests: any bytes into decoding, any array into the preprocessing entry points, give a
result or the project's own error (ImageError), never another exception."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

from digitlab.errors import ImageError
from digitlab.inference.decode import decode_bytes, load_image
from digitlab.inference.preprocess import digit_to_28, extract_digit, extract_ink

pytestmark = pytest.mark.usefixtures("ieee_floats")

BOUNDED = settings(max_examples=150, derandomize=True, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _valid(fmt: str) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), np.uint8))
    image.save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [_valid(fmt) for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")]


@st.composite
def mangled_images(draw) -> bytes:
    """A valid file of each format with bytes flipped, cut or spliced: reaches deep into the decoders."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


def _decoded_or_image_error(data: bytes) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would print lines of its own in the CLI
        try:
            image, note = decode_bytes(data, max_pixels=4_000_000)
        except ImageError as exc:
            assert "\n" not in str(exc)
            return
    assert max(image.size) <= 1024 and image.mode in ("L", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F")


@BOUNDED
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_raise_image_error(data):
    _decoded_or_image_error(data)


@BOUNDED
@given(mangled_images())
def test_mangled_images_decode_or_raise_image_error(data):
    _decoded_or_image_error(data)


def _preprocess(array: np.ndarray) -> None:
    try:
        image, _ = load_image(array)
    except ImageError:
        return
    ink, digit = extract_digit(image)
    if digit is not None:
        x28 = digit_to_28(ink.ink, digit)
        assert x28.shape == (28, 28) and np.isfinite(x28).all()
    ink = extract_ink(image)
    assert ink.ink.ndim == 2 and np.isfinite(ink.ink).all()


PIXEL_DTYPES = st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_])


@BOUNDED
@given(arrays(PIXEL_DTYPES, array_shapes(min_dims=2, max_dims=3, min_side=0, max_side=64)))
def test_arbitrary_arrays_preprocess_or_raise_image_error(array):
    _preprocess(array)


@BOUNDED
@given(st.integers(1, 80), st.integers(1, 80), st.integers(0, 2**32 - 1))
def test_random_grey_images_preprocess(height, width, seed):
    _preprocess(np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8))


@pytest.fixture(scope="module")
def recognizer():
    from digitlab.inference.recognizer import Recognizer

    return Recognizer.load()


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.uint8, array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=48)) | st.binary(max_size=512))
def test_recognizer_answers_or_reports_an_error(recognizer, item):
    prediction = recognizer.predict([item])[0]
    assert prediction.error is None or "\n" not in prediction.error
    assert prediction.digit is None or 0 <= prediction.digit <= 9
