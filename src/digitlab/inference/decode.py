"""Decode one input (a path, bytes, a file object, a PIL image or a numpy array) into a PIL image.

Everything that can go wrong with a user's file is turned into an ImageError with a one-line message
that names the problem and what to do: a missing file, an empty file, a text file named .png, a
truncated PNG or JPEG, a decompression bomb. The pixel count is checked from the header, before any
pixel is decoded, so a 30000x30000 PNG is refused in milliseconds with bounded memory.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np

from digitlab.errors import ImageError

DEFAULT_MAX_PIXELS = 50_000_000  # a 48 MP phone photo passes; decoded RGB of 50 MP is 150 MB
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FORMATS_TEXT = "PNG, JPEG, BMP, GIF, TIFF or WebP"


def load_image(src, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES):
    """Return (PIL.Image, note) for `src`; note says what was adapted (e.g. first frame of a GIF).

    src: str / os.PathLike (a file), bytes / bytearray / memoryview (an encoded image), a binary file
    object, a PIL.Image.Image, or a numpy array (see `array_to_image`). The image is fully loaded, so
    a truncated file fails here, not later. Raises ImageError.
    """
    from PIL import Image

    if isinstance(src, Image.Image):
        _check_pixels(src.size, max_pixels)
        return _first_frame(src)
    if isinstance(src, np.ndarray):
        return array_to_image(src, max_pixels), None
    if isinstance(src, (str, os.PathLike)):
        data = read_file(src, max_bytes)
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif hasattr(src, "read"):
        data = src.read(max_bytes + 1)
    else:
        raise ImageError(
            f"cannot read an image from a {type(src).__name__}: give a file path, bytes, a PIL image or a numpy array"
        )
    return decode_bytes(data, max_pixels, max_bytes)


def read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of an image file, or ImageError for a missing, unreadable, empty or oversized file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImageError(f"{path} is a folder, not an image file")
    except FileNotFoundError:
        raise ImageError(f"no such file: {path} (check the path)") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise ImageError(f"the file is {size:,} bytes, over the limit of {max_bytes:,}: give a smaller image")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None


def decode_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES):
    """(PIL.Image, note) from the encoded bytes of a PNG, JPEG, BMP, GIF, TIFF or WebP file."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"the file is empty (0 bytes): give a {FORMATS_TEXT} image")
    if len(data) > max_bytes:
        raise ImageError(f"the image is over the limit of {max_bytes:,} bytes: give a smaller image")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own limit, raises) about big images; our limit decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(_not_an_image(data)) from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        raise ImageError(_too_many_pixels_text(pixels, max_pixels)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"the image header is corrupt ({_short(exc)}): re-save the file as PNG or JPEG") from None
    _check_pixels(image.size, max_pixels)
    return _first_frame(image)


def _first_frame(image):
    """Load frame 0 of an animated GIF/WebP/TIFF (with a note saying so); load a still image fully."""
    note = None
    n_frames = getattr(image, "n_frames", 1) if getattr(image, "is_animated", False) else 1
    try:
        if n_frames > 1:
            image.seek(0)
            note = f"animated {image.format or 'image'} with {n_frames} frames: used the first frame"
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(
            f"the image data is truncated or corrupt ({_short(exc)}): re-export or re-download the file"
        ) from None
    return image, note


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(_too_many_pixels_text(width * height, max_pixels, f"{width}x{height}"))


def _too_many_pixels_text(pixels: int | None, max_pixels: int, dims: str | None = None) -> str:
    what = f"{dims} = {pixels:,} pixels" if dims else (f"{pixels:,} pixels" if pixels else "too many pixels")
    return (
        f"the image is too large ({what}, limit {max_pixels:,}): it was refused before decoding; "
        "scale it down or raise --max-pixels"
    )


def _not_an_image(data: bytes) -> str:
    head = data[:512]
    try:
        head.decode("utf-8")
        kind = "it looks like a text file"
    except UnicodeDecodeError:
        kind = f"it starts with {data[:8]!r}"
    return f"not an image Pillow can read ({kind}): give a {FORMATS_TEXT} image"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


def array_to_image(array: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS):
    """A PIL image from a numpy array.

    Shapes (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA. dtypes: uint8 (0-255), uint16
    (0-65535), bool, or float in [0, 1] (floats above 1, up to 255, are read as 0-255 grey levels).
    Polarity does not matter: preprocessing detects it.
    """
    from PIL import Image

    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be shaped (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    _check_pixels((arr.shape[1], arr.shape[0]), max_pixels)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageError("the image array holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"float pixel values must lie in [0, 1] (or 0-255), found {lo:g}..{hi:g}")
        arr = np.rint(arr * (255.0 if hi <= 1.0 else 1.0)).astype(np.uint8)
    elif arr.dtype == np.uint16 and arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr))  # mode I;16
    elif arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"integer pixel values must lie in 0-255 (uint16 grey is accepted too), found {lo}..{hi}")
        arr = arr.astype(np.uint8)
    else:
        raise ImageError(f"unsupported image array dtype {arr.dtype}: use uint8, uint16, bool or float")
    return Image.fromarray(np.ascontiguousarray(arr))  # L, RGB or RGBA from the shape
