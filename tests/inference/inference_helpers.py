"""Helpers for the inference tests: encoded images, a synthetic digit, a bomb's header."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def ring_digit(size: int = 400, ink_dark: bool = True, radius: float = 0.25, width: float = 0.05,
               centre=(0.5, 0.5)) -> np.ndarray:
    """uint8 (size, size): an anti-aliased ring (a '0'), dark on white (or white on black)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = np.hypot((yy - centre[0] * size) / 1.3, xx - centre[1] * size)  # taller than wide, as digits are
    cov = np.clip(width * size / 2 - np.abs(r - radius * size) + 0.5, 0, 1)
    img = (1 - cov) if ink_dark else cov
    return np.rint(img * 255).astype(np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (8-bit grey) with a tiny, truncated IDAT: a bomb's
    header. Anything that decodes it before checking the size would allocate width*height bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
