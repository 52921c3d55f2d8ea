"""Test inputs made on the fly: hand-drawn-looking digits and hostile uploads.

Digits are drawn with thick round strokes (like a finger on the page), dark ink on white paper, so
they go through the full preprocessing: polarity, crop, resize, centring.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

# Strokes as polylines in a 0..1 box.
STROKES = {
    "1": [[(0.50, 0.15), (0.50, 0.85)]],
    "7": [[(0.25, 0.18), (0.75, 0.18), (0.42, 0.85)]],
    "0": [[(0.50, 0.15), (0.30, 0.25), (0.25, 0.50), (0.30, 0.75), (0.50, 0.85), (0.70, 0.75),
           (0.75, 0.50), (0.70, 0.25), (0.50, 0.15)]],
}


def digit_image(digit: str, size: int = 200, width: float = 0.09, dark_on_light: bool = True) -> Image.Image:
    """An 8-bit greyscale drawing of `digit` (a key of STROKES)."""
    paper, ink = (255, 0) if dark_on_light else (0, 255)
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    w = max(1, round(width * size))
    for line in STROKES[digit]:
        pts = [(x * size, y * size) for x, y in line]
        draw.line(pts, fill=ink, width=w, joint="curve")
        for x, y in (pts[0], pts[-1]):  # round caps
            draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=ink)
    return image


def number_image(digits: str, size: int = 160, gap: int = 30) -> Image.Image:
    """Digits side by side on white paper, separated by `gap` pixels."""
    tiles = [digit_image(d, size) for d in digits]
    out = Image.new("L", (len(tiles) * (size - 60) + gap * (len(tiles) + 1), size), 255)
    x = gap
    for tile in tiles:
        # The drawings sit in the middle of their tiles: crop 30 px each side to bring them closer.
        out.paste(tile.crop((30, 0, size - 30, size)), (x, 0))
        x += size - 60 + gap
    return out


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def pixels28(digit: str) -> np.ndarray:
    """float32 (28, 28) in [0, 1], white ink on black, the digit in a centred 20x20 box (MNIST-like)."""
    small = digit_image(digit, size=200, dark_on_light=False).resize((20, 20), Image.BOX)
    field = np.zeros((28, 28), np.float32)
    field[4:24, 4:24] = np.asarray(small, np.float32) / 255.0
    return field


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid ~100-byte PNG whose header declares width x height 8-bit grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # far too little data: only the header matters
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def noisy_png(size: int = 256, seed: int = 0) -> bytes:
    """A PNG big enough (random pixels do not compress) that cutting it leaves the pixel data short."""
    rng = np.random.default_rng(seed)
    return png_bytes(Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)))


SMALL_MAX_BYTES = 256 * 1024      # the test app's limits: small, so the limit tests stay cheap
SMALL_MAX_PIXELS = 4_000_000


def assert_error(response, status: int) -> dict:
    """The one error shape: {"error": short kind, "detail": one line}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"] and "\n" not in body["detail"]
    return body
