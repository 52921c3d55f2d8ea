"""Decode one input (a path, bytes, a file object, a PIL image or a numpy array) into a small PIL image.

Everything that can go wrong with a user's file is turned into an ImageError with a one-line message
that names the problem and what to do: a missing file, a folder, a device or a named pipe, an empty
file, a text file named .png, a format other than PNG, JPEG, BMP, GIF, TIFF or WebP (so that no
PostScript upload ever reaches Ghostscript), a truncated or corrupt file, a decompression bomb.

Memory stays bounded: the pixel count is checked from the header before any pixel is decoded, a file
is read only while it stays under the byte limit, a JPEG is decoded at a reduced scale (its DCT
scaling, "draft"), and every image is reduced to DECODE_MAX_SIDE on its longer side right after
decoding, before anything converts it to floats. The preprocessing works at that size anyway.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from digitlab.errors import ImageError
from digitlab.inference.limits import DECODE_MAX_SIDE, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS  # noqa: F401

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DECODED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # Pillow's names; nothing else is opened
FORMATS_TEXT = "PNG, JPEG, BMP, GIF, TIFF or WebP"
SCALE_KEY = "digitlab.decode_scale"  # in image.info: decoded pixels per input pixel (< 1 when reduced)

# Formats recognised only to name them in the error (they are never opened).
_OTHER_FORMATS = ((b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"%PDF", "PDF"),
                  (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "Photoshop PSD"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"))


def load_image(src, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
               max_side: int | None = DECODE_MAX_SIDE):
    """Return (PIL.Image, note) for `src`; note says what was adapted (e.g. first frame of a GIF).

    src: str / os.PathLike (a regular file), bytes / bytearray / memoryview (an encoded image), a
    binary file object, a PIL.Image.Image, or a numpy array (see `array_to_image`). The image is
    fully loaded, so a truncated file fails here, not later, and reduced to `max_side` on its longer
    side (None: kept at full size); `decoded_scale(image)` says by how much. Raises ImageError.
    """
    if isinstance(src, Image.Image):
        _check_pixels(src.size, max_pixels)
        image, note = _first_frame(src)
        return _guarded(reduce_image, image, max_side), note
    if isinstance(src, np.ndarray):
        return reduce_image(array_to_image(src, max_pixels), max_side), None
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
    return decode_bytes(data, max_pixels, max_bytes, max_side)


def read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file, at most `max_bytes` of them, or ImageError.

    A folder, a device (/dev/zero), a named pipe or a socket is refused before it is read: reading
    one could hang or never end. The file is opened without blocking (a pipe swapped in after the
    check cannot hang it either) and never read past max_bytes + 1.
    """
    path = Path(path)
    try:
        _check_regular(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"no such file: {path} (check the path)") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as file:
            _check_regular(path, os.fstat(file.fileno()))
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ImageError(f"the file is over the limit of {max_bytes:,} bytes: give a smaller image")
    return data


def _check_regular(path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{path} is {file_kind(info.st_mode)}, not a regular file: give an image file")


def file_kind(mode: int) -> str:
    """'a named pipe (FIFO)', 'a character device', ... for a st_mode that is not a regular file."""
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    return next((text for test, text in kinds if test(mode)), "not a regular file")


def decode_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_side: int | None = DECODE_MAX_SIDE):
    """(PIL.Image, note) from the encoded bytes of a PNG, JPEG, BMP, GIF, TIFF or WebP file; any
    failure of the decoder is an ImageError."""
    if not data:
        raise ImageError(f"the file is empty (0 bytes): give a {FORMATS_TEXT} image")
    if len(data) > max_bytes:
        raise ImageError(f"the image is over the limit of {max_bytes:,} bytes: give a smaller image")
    try:
        image = open_image(data)
    except UnidentifiedImageError:
        raise ImageError(_not_an_image(data)) from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        raise ImageError(_too_many_pixels_text(pixels, max_pixels)) from None
    except Exception as exc:  # noqa: BLE001 - a decoder's failure on a user's bytes is the input's fault
        raise ImageError(f"the image header is corrupt ({_short(exc)}): re-save the file as PNG or JPEG") from None
    _check_pixels(image.size, max_pixels)
    _draft(image, max_side)
    image, note = _first_frame(image)
    return _guarded(reduce_image, image, max_side), note


def open_image(data: bytes):
    """Pillow's lazy open of `data` (the header only), restricted to DECODED_FORMATS."""
    with warnings.catch_warnings():
        # Pillow warns (and past 2x its own limit, raises) about big images; our limit decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=DECODED_FORMATS)


def header_pixels(data: bytes) -> int:
    """width * height from the image header alone (0 when there is no readable header)."""
    try:
        with open_image(data) as image:
            return image.width * image.height
    except Image.DecompressionBombError:
        return 1 << 62
    except Exception:  # noqa: BLE001 - any unreadable header simply has no size
        return 0


def _draft(image, max_side: int | None) -> None:
    """Let a big JPEG decode at 1/2, 1/4 or 1/8 scale, still at least max_side on its longer side."""
    if max_side is None or image.format != "JPEG" or max(image.size) <= max_side:
        return
    ratio = max_side / max(image.size)
    try:
        image.draft(None, (math.ceil(image.width * ratio), math.ceil(image.height * ratio)))
    except Exception:  # noqa: BLE001 - drafting is an optimisation; load() reports real problems
        pass


def _first_frame(image):
    """Load frame 0 of an animated GIF/WebP/TIFF (with a note saying so); load a still image fully."""
    note = None
    try:
        with warnings.catch_warnings():  # e.g. "Truncated File Read": the file is refused or read anyway
            warnings.simplefilter("ignore")
            n_frames = getattr(image, "n_frames", 1) if getattr(image, "is_animated", False) else 1
            if n_frames > 1:
                image.seek(0)
                note = f"animated {image.format or 'image'} with {n_frames} frames: used the first frame"
            image.load()
    except MemoryError:
        raise ImageError("the image is too large to decode in the memory available: give a smaller image") from None
    except Exception as exc:  # noqa: BLE001 - e.g. zlib, OSError, SyntaxError, struct.error from a decoder
        raise ImageError(
            f"the image data is truncated or corrupt ({_short(exc)}): re-export or re-download the file"
        ) from None
    return image, note


def _guarded(step, *args):
    try:
        return step(*args)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unusual pixel layout the conversions cannot handle
        raise ImageError(f"the image cannot be converted ({_short(exc)}): re-save it as an 8-bit PNG or JPEG") from None


# Modes kept as they are (the preprocessing reads each); every other one is converted to the nearest.
_KEPT_MODES = ("L", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
_CONVERTED = {"1": "L", "La": "LA", "RGBa": "RGBA", "PA": "RGBA", "RGBX": "RGB", "YCbCr": "RGB",
              "LAB": "RGB", "HSV": "RGB", "I;16B": "I;16", "I;16L": "I;16", "I;16N": "I;16"}


def reduce_image(image, max_side: int | None = DECODE_MAX_SIDE):
    """`image` in a mode the preprocessing reads, reduced by area averaging so that its longer side is
    at most `max_side` (as the preprocessing would, only sooner); the EXIF orientation is kept, and
    image.info[SCALE_KEY] records the factor. The same image when nothing needed changing."""
    original = image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode not in _KEPT_MODES:
        image = image.convert(_CONVERTED.get(image.mode, "RGB"))
    long_side = max(image.size)
    if max_side is None or long_side <= max_side:
        return image
    scale = max_side / long_side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    factor = int(1.0 / scale + 1e-9)
    small = image
    if factor >= 2 and not image.mode.startswith("I;16"):  # reduce averages k x k blocks, 5x cheaper than BOX
        small = _reduce_in_bands(small, factor) if small.mode in ("LA", "RGBA") else small.reduce(factor)
    if small.size != size:
        small = small.resize(size, Image.BOX)
    _keep_orientation(original, small)
    small.info[SCALE_KEY] = decoded_scale(original) * size[0] / original.width
    return small


def _reduce_in_bands(image, factor: int, rows: int = 64):
    """image.reduce(factor), a band of rows at a time: Pillow premultiplies the alpha of the image it
    reduces, and a full-size premultiplied copy would double the memory of a big transparent image."""
    out = Image.new(image.mode, (-(-image.width // factor), -(-image.height // factor)))
    step = rows * factor
    for top in range(0, image.height, step):
        band = image.crop((0, top, image.width, min(image.height, top + step)))
        out.paste(band.reduce(factor), (0, top // factor))
    out.info = dict(image.info)
    return out


def decoded_scale(image) -> float:
    """Pixels of `image` per pixel of the input it was decoded from (1.0 when it was not reduced)."""
    return float(image.info.get(SCALE_KEY, 1.0))


def _keep_orientation(source, small) -> None:
    """Copy the EXIF orientation onto the reduced copy (a TIFF keeps it in tags a copy does not have)."""
    orientation = source.getexif().get(ExifTags.Base.Orientation)
    if orientation and small.getexif().get(ExifTags.Base.Orientation) != orientation:
        exif = small.getexif()
        exif[ExifTags.Base.Orientation] = orientation
        small.info["exif"] = exif.tobytes()


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
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return f"not an image digitlab reads (it is {name}): give a {FORMATS_TEXT} image"
    try:
        data[:512].decode("utf-8")
        kind = "it looks like a text file"
    except UnicodeDecodeError:
        kind = f"it starts with {data[:8]!r}"
    return f"not an image digitlab reads ({kind}): give a {FORMATS_TEXT} image"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


def array_to_image(array: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS):
    """A PIL image from a numpy array.

    Shapes (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA. dtypes: uint8 (0-255), uint16
    (0-65535), bool, or float in [0, 1] (floats above 1, up to 255, are read as 0-255 grey levels).
    Polarity does not matter: preprocessing detects it.
    """
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
