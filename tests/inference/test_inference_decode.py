"""decode.load_image: every kind of bad input gets its own clear one-line ImageError."""

from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
from PIL import Image

from digitlab.errors import ImageError
from digitlab.inference.decode import array_to_image, load_image
from digitlab.inference.preprocess import to_grey
from inference_helpers import encode, png_header_only, ring_digit


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_good_png_path_bytes_file_object_and_pil(images):
    path = images["ring.png"]
    for src in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), Image.open(path)):
        image, note = load_image(src)
        assert image.size == (200, 200) and note is None


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "nope.png")
    assert "no such file" in one_line(exc)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path)
    assert "is a folder" in one_line(exc)


def test_zero_byte_file(images):
    with pytest.raises(ImageError) as exc:
        load_image(images["empty.png"])
    assert "empty (0 bytes)" in one_line(exc)


def test_text_file_named_png(images):
    with pytest.raises(ImageError) as exc:
        load_image(images["notes.png"])
    assert "not an image" in one_line(exc) and "text file" in str(exc.value)


@pytest.mark.parametrize("name", ["truncated.png", "truncated.jpg"])
def test_truncated_png_and_jpeg(images, name):
    with pytest.raises(ImageError) as exc:
        load_image(images[name])
    assert "truncated or corrupt" in one_line(exc)


def test_decompression_bomb_is_refused_from_the_header_fast_with_bounded_memory(images):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    with pytest.raises(ImageError) as exc:
        load_image(images["bomb.png"])
    elapsed = time.perf_counter() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert "too large" in one_line(exc) and "--max-pixels" in str(exc.value)
    assert elapsed < 0.5 and grown_mib < 50  # decoding would need 900 MB


def test_max_pixels_is_configurable():
    data = png_header_only(10_000, 10_000)  # 100 MP: over our default, under Pillow's own error limit
    with pytest.raises(ImageError, match="10000x10000 = 100,000,000 pixels, limit 50,000,000"):
        load_image(data)
    small = encode(Image.fromarray(ring_digit(100)))
    assert load_image(small, max_pixels=10_000)[0].size == (100, 100)
    with pytest.raises(ImageError, match="limit 5,000"):
        load_image(small, max_pixels=5_000)


def test_animated_gif_uses_the_first_frame_and_says_so():
    first = Image.fromarray(ring_digit(64))
    others = [Image.new("L", (64, 64), 0), Image.new("L", (64, 64), 128)]  # Pillow merges equal frames
    data = encode(first, "GIF", save_all=True, append_images=others, duration=100, loop=0)
    image, note = load_image(data)
    assert note == "animated GIF with 3 frames: used the first frame"
    grey, _ = to_grey(image)
    assert grey.min() < 0.2 and grey.max() > 0.8  # the ring, not the blank later frames


def test_16_bit_png_is_scaled_not_clipped():
    arr = np.full((32, 32), 60000, np.uint16)
    arr[8:24, 14:18] = 5000
    image, _ = load_image(encode(Image.fromarray(arr)))
    assert image.mode.startswith("I")
    grey, _ = to_grey(image)
    assert grey[0, 0] == pytest.approx(60000 / 65535, abs=1e-3)
    assert grey[16, 15] == pytest.approx(5000 / 65535, abs=1e-3)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted_to_real_grey(fmt):
    cmyk = Image.new("CMYK", (48, 48), (0, 0, 0, 0))  # white paper
    cmyk.paste((0, 0, 0, 255), (20, 8, 28, 40))  # black ink (K)
    image, _ = load_image(encode(cmyk, fmt))
    assert image.mode == "CMYK"
    grey, _ = to_grey(image)
    assert grey[2, 2] > 0.9 and grey[24, 24] < 0.1


def test_arrays_of_each_dtype():
    ring = ring_digit(60)
    for arr in (ring, ring.astype(np.float32) / 255, ring.astype(np.float64), ring > 127,
                ring.astype(np.uint16) * 257, np.stack([ring] * 3, axis=2)):
        image, _ = load_image(arr)
        grey, _ = to_grey(image)
        assert grey[30, 30] > 0.9 and grey.min() < 0.1  # paper light, ink dark, whatever the dtype


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.zeros((5, 5, 2), np.uint8), "shaped"),
        (np.full((5, 5), -1.0), "must lie in"),
        (np.full((5, 5), np.nan), "NaN"),
        (np.full((5, 5), 300, np.int32), "0-255"),
        (np.zeros((5, 5), np.complex64), "dtype"),
    ],
)
def test_bad_arrays(arr, message):
    with pytest.raises(ImageError, match=message):
        array_to_image(arr)


def test_unsupported_type():
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        load_image(42)
