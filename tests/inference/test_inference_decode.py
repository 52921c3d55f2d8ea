"""decode.load_image: every kind of bad input gets its own clear one-line ImageError."""

from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
from PIL import Image

from digitlab.errors import ImageError
from digitlab.inference.decode import array_to_image, header_pixels, load_image
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


# -- only the documented formats, only regular files, bounded memory ---------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\nshowpage\n"


def test_eps_sent_as_png_is_refused_without_running_ghostscript(tmp_path, monkeypatch):
    marker = tmp_path / "gs-ran"
    fake = tmp_path / "bin" / "gs"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho ran >> {marker}\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    for data in (EPS, b"\xc5\xd0\xd3\xc6" + bytes(28) + EPS):
        with pytest.raises(ImageError) as exc:
            load_image(data)
        assert "EPS" in one_line(exc) and "PNG, JPEG" in str(exc.value)
        assert header_pixels(data) == 0  # the server reads the header before it decodes
    assert not marker.exists()


@pytest.mark.parametrize("fmt, magic", [("PDF", b"%PDF-1.4\n"), ("Photoshop PSD", b"8BPS\x00\x01")])
def test_other_formats_are_named_and_refused(fmt, magic):
    with pytest.raises(ImageError, match=fmt):
        load_image(magic + bytes(64))


def test_formats_pillow_knows_but_digitlab_does_not_accept_are_refused():
    image = Image.fromarray(ring_digit(40))
    for fmt in ("PPM", "TGA", "PCX", "ICO"):
        with pytest.raises(ImageError, match="not an image digitlab reads"):
            load_image(encode(image, fmt))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_each_accepted_format_decodes(fmt):
    image, _ = load_image(encode(Image.fromarray(ring_digit(60)).convert("RGB"), fmt))
    assert image.size == (60, 60)


def test_device_and_named_pipe_are_refused_at_once(tmp_path):
    import os
    import subprocess
    import sys

    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    # In a subprocess under a timeout: a regression would hang or fill the memory, not just fail.
    code = ("import sys; from digitlab.inference.decode import load_image\n"
            "from digitlab.errors import ImageError\n"
            "for p in sys.argv[1:]:\n"
            "    try: load_image(p)\n"
            "    except ImageError as e: print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, "/dev/zero", str(pipe)], capture_output=True, text=True,
                          timeout=60)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stderr
    assert "a character device, not a regular file" in lines[0]
    assert "a named pipe (FIFO), not a regular file" in lines[1]


def test_a_file_is_read_only_up_to_the_limit(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(bytes(5000))
    with pytest.raises(ImageError, match="over the limit of 4,096 bytes"):
        load_image(path, max_bytes=4096)


def test_big_images_are_reduced_to_the_working_size_right_after_decoding():
    from digitlab.inference.decode import DECODE_MAX_SIDE, decoded_scale
    from digitlab.inference.grey import WORK_SIZE

    assert DECODE_MAX_SIDE == WORK_SIZE  # reducing sooner must not change what the preprocessing sees
    big = Image.fromarray(ring_digit(3000)).convert("RGBA")
    image, _ = load_image(encode(big))
    assert image.size == (1024, 1024) and image.mode == "RGBA"
    assert decoded_scale(image) == pytest.approx(1024 / 3000)
    small, _ = load_image(encode(Image.fromarray(ring_digit(300))))
    assert small.size == (300, 300) and decoded_scale(small) == 1.0
    full, _ = load_image(encode(big), max_side=None)
    assert full.size == (3000, 3000)


def test_reduction_keeps_exif_orientation_and_matches_reducing_later():
    from PIL import ExifTags

    ring = ring_digit(2400)
    ring[:300, :300] = 0  # a dark corner to tell orientations apart
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90 degrees clockwise
    for fmt in ("JPEG", "TIFF"):
        data = encode(Image.fromarray(ring).convert("RGB"), fmt, exif=exif.tobytes())
        image, _ = load_image(data)
        grey, scale = to_grey(image)
        upright, _ = to_grey(__import__("PIL.ImageOps", fromlist=["x"]).exif_transpose(image))
        assert scale == 1.0 and grey.shape == (1024, 1024)
        assert upright[:100, -100:].mean() < 0.2 and upright[:100, :100].mean() > 0.8  # corner now top right
        reference, _ = to_grey(Image.open(io.BytesIO(data)))
        assert np.abs(grey - reference).mean() < 0.02


def test_big_transparent_png_costs_little_memory(tmp_path):
    import subprocess
    import sys

    from PIL import ImageDraw

    big = Image.new("RGBA", (6000, 6000), (0, 0, 0, 0))
    ImageDraw.Draw(big).line([(1500, 1000), (4000, 5000)], fill=(0, 0, 0, 255), width=200)
    path = tmp_path / "big.png"
    big.save(path)
    del big
    # A fresh process, so that the peak RSS is this decode's: 6000x6000 RGBA is 137 MiB decoded; a
    # full-size premultiplied copy, or float arrays at full size, would add 137 MiB to over 400 MiB.
    code = (
        "import resource, sys\nfrom digitlab.inference.decode import load_image\n"
        "from digitlab.inference.preprocess import extract_digit\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "image, _ = load_image(sys.argv[1]); ink, digit = extract_digit(image)\n"
        "grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024\n"
        "print(image.size[0], image.size[1], digit is not None, grown)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    width, height, found, grown_mib = done.stdout.split()
    assert (width, height, found) == ("1024", "1024", "True")
    assert int(grown_mib) < 200, done.stdout
