"""The image sets of bench/real_world.py: real ones read from disk, and stress sets generated (seeded)
from MNIST test digits, or from held-out fonts, framed the ways people's images differ from MNIST.

Every set is a list of (encoded image bytes, label); the label of a generated image is the label of the
digit drawn into it, so a wrong answer is the recogniser's, not the generator's.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
from render import digit_coverage, light_field, pen, skeleton, styled_coverage  # noqa: E402

STRESS_SETS = ("tight16", "tight8", "photo", "ruled", "grid", "thin", "thick", "flagged1", "crossed7", "shadow",
               "table", "pencil", "blank")
NO_DIGIT = -1  # the label of the blank set: the right answer is "no digit"


def png(grey: np.ndarray) -> bytes:
    """PNG bytes of a grey float image in [0, 1] (or uint8)."""
    if grey.dtype != np.uint8:
        grey = np.rint(np.clip(grey, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# -- real sets -----------------------------------------------------------------------------------------

def sklearn_digits(n: int | None = None) -> list[tuple[bytes, int]]:
    """scikit-learn's bundled digits as they are: 8x8, 17 grey levels, dark ink on white, no margin."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images[:n], bunch.target[:n]
    return [(png((1.0 - im / 16.0).astype(np.float32)), int(y)) for im, y in zip(images, labels)]


def realdigits(root: Path) -> list[tuple[bytes, int, str, str]]:
    """[(file bytes, label, source, kind)] from realdigits-dev's manifest.csv."""
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [((root / r["file"]).read_bytes(), int(r["label"]), r["source"], r["kind"]) for r in rows]


# -- stress sets from MNIST test digits ----------------------------------------------------------------

def tight_crop(digit: np.ndarray, side: int) -> bytes:
    """The digit cropped to its ink's box, scaled (aspect kept) to `side` px on its longer side and set
    in a side x side square: dark ink on white, the ink touching the square's edges, no margin."""
    rows, cols = np.flatnonzero(digit.max(1) > 0), np.flatnonzero(digit.max(0) > 0)
    box = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    scale = side / max(box.size)
    w, h = max(1, round(box.size[0] * scale)), max(1, round(box.size[1] * scale))
    small = np.asarray(box.resize((w, h), Image.LANCZOS), dtype=np.float32) / 255.0
    square = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = np.clip(small, 0, 1)
    return png(1.0 - square)


def _canvas_with(cov: np.ndarray, size: int, rng) -> tuple[np.ndarray, tuple[int, int]]:
    """cov placed at random (fully inside) on a size x size canvas; returns the canvas and its top-left."""
    top = int(rng.integers(0, size - cov.shape[0] + 1))
    left = int(rng.integers(0, size - cov.shape[1] + 1))
    canvas = np.zeros((size, size), np.float32)
    canvas[top : top + cov.shape[0], left : left + cov.shape[1]] = cov
    return canvas, (top, left)


def photo(digit: np.ndarray, rng) -> bytes:
    """A phone photo: dark ink on off-white paper under a shadow gradient, sensor noise, JPEG."""
    size = 320
    cov, _ = _canvas_with(digit_coverage(digit, int(rng.integers(90, 220))), size, rng)
    paper, ink = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.3)
    grey = paper * (1 - cov) + ink * cov
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / np.ptp(ramp)
    light = 1.0 - rng.uniform(0.3, 0.6) * ramp  # up to 60% darker on the shadowed side
    rgb = (grey * light)[..., None] * np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.88, 1.0)])
    rgb = rgb + rng.normal(0, rng.uniform(0.01, 0.04), rgb.shape)
    return jpeg(rgb, int(rng.integers(60, 90)))


def hard_shadow(size: int, rng) -> np.ndarray:
    """A multiplicative light field: a sharp-edged shadow (a hand or a phone, 1-3 px of blur) across the
    paper at any angle, 25-55% darker, over a gentle gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    signed = np.cos(angle) * (xx - size / 2) + np.sin(angle) * (yy - size / 2) - rng.uniform(-0.3, 0.3) * size
    shadow = 1.0 / (1.0 + np.exp(-signed / rng.uniform(0.5, 1.5)))
    ramp = (np.cos(angle + 1) * xx + np.sin(angle + 1) * yy) / size
    ramp = (ramp - ramp.min()) / np.ptp(ramp)
    return (1.0 - rng.uniform(0.0, 0.3) * ramp) * (1.0 - rng.uniform(0.25, 0.55) * shadow)


def table_edge(size: int, rng) -> np.ndarray:
    """Where the table shows beyond the paper (1 = table) at one border or two that meet in a corner: a
    straight paper edge skewed up to ~8 degrees, 3-18% of the frame deep."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    table = np.zeros((size, size), np.float32)
    first = int(rng.integers(4))
    for side in [first, (first + 1) % 4][: int(rng.integers(1, 3))]:
        along, across = (xx, yy) if side in (0, 2) else (yy, xx)
        across = across if side in (0, 1) else size - 1 - across
        edge = rng.uniform(0.03, 0.18) * size + rng.uniform(-0.14, 0.14) * (along - size / 2)
        table = np.maximum(table, np.clip(edge - across + 0.5, 0, 1))
    return table


def shadowed_photo(digit: np.ndarray, rng, table: bool) -> bytes:
    """A phone photo of a digit on paper: a hard shadow edge across the paper, or the darker, textured
    table showing at one or two borders (under a gradient), sensor noise, JPEG."""
    size = 320
    digit_cov = np.pad(digit_coverage(digit, int(rng.integers(80, 160))), 8)
    under = table_edge(size, rng) if table else np.zeros((size, size), np.float32)
    for _ in range(50):  # the digit is written on the paper, clear of the table
        cov, _ = _canvas_with(digit_cov, size, rng)
        if not (under[cov > 0] > 0).any():
            break
    else:
        under[:] = 0.0
    paper, ink = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.3)
    grey = paper * (1 - cov) + ink * cov
    if table:
        texture = rng.uniform(0.15, 0.5) + 0.08 * rng.standard_normal((size, size))
        grey = grey * (1 - under) + np.clip(texture, 0, 1) * under
        light = hard_shadow(size, rng) ** 0.3  # the table scenes get a softer light field
    else:
        light = hard_shadow(size, rng)
    rgb = (grey * light)[..., None] * np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.88, 1.0)])
    rgb = rgb + rng.normal(0, rng.uniform(0.01, 0.03), rgb.shape)
    return jpeg(rgb, int(rng.integers(60, 90)))


def pencil_photo(digit: np.ndarray | None, rng) -> bytes:
    """A phone photo of a faint pencil or ballpoint digit (25-50% darker than the paper, a line under
    half MNIST's stroke) on a 480-960 px photo under a gradient and a soft shadow, noise, JPEG; with
    `digit` None, the same photo of blank paper."""
    h = int(rng.integers(480, 961))
    w = h * 4 // 3
    cov = np.zeros((h, w), np.float32)
    if digit is not None:
        height = int(rng.uniform(0.15, 0.35) * h)
        line = pen(skeleton(np.pad(digit_coverage(digit, height), 2) > 0.5),
                   max(1.5, 2.6 * height / 20 * rng.uniform(0.25, 0.5)))
        top, left = int(rng.integers(0, h - line.shape[0] + 1)), int(rng.integers(0, w - line.shape[1] + 1))
        cov[top : top + line.shape[0], left : left + line.shape[1]] = line
    paper, contrast = rng.uniform(0.7, 0.95), rng.uniform(0.25, 0.5)
    grey = paper * (1 - contrast * cov) * light_field((h, w), rng)
    rgb = grey[..., None] * np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.88, 1.0)])
    rgb = rgb + rng.normal(0, rng.uniform(0.01, 0.03), rgb.shape)
    return jpeg(rgb, int(rng.integers(75, 92)))


def lined_paper(digit: np.ndarray, rng, grid: bool) -> bytes:
    """A digit written across printed lines: ruled (with a margin line half the time) or a squared grid.
    The lines are as dark as a notebook's under a phone camera and cross the digit."""
    size = 300
    height = int(rng.integers(70, 150))
    cov, (top, left) = _canvas_with(digit_coverage(digit, height), size, rng)
    spacing = int(height * (rng.uniform(0.35, 0.6) if grid else rng.uniform(0.45, 0.8)))
    thickness = int(rng.integers(1, 4))
    lines = np.zeros((size, size), np.float32)
    for y in range(int(rng.integers(0, spacing)), size, spacing):
        lines[y : y + thickness] = 1.0
    if grid:
        for x in range(int(rng.integers(0, spacing)), size, spacing):
            lines[:, x : x + thickness] = 1.0
    elif rng.random() < 0.5:  # the margin line, near the digit's left side
        x = int(np.clip(left + rng.integers(-10, 15), 0, size - 3))
        lines[:, x : x + thickness + 1] = 1.0
    paper = rng.uniform(0.85, 1.0)
    line_grey = paper * (1 - rng.uniform(0.25, 0.5))
    grey = paper * (1 - lines) + line_grey * lines
    grey = grey * (1 - cov) + rng.uniform(0.05, 0.25) * cov
    return png(grey + rng.normal(0, 0.01, grey.shape))


def stroke(digit: np.ndarray, rng, style: str) -> bytes:
    """A thin pen (about 0.4x MNIST's stroke) or a marker (about 1.75x), dark on white."""
    cov = styled_coverage(digit, int(rng.integers(60, 160)), style, rng)
    canvas = np.zeros((max(cov.shape) + 80,) * 2, np.float32)
    top, left = (canvas.shape[0] - cov.shape[0]) // 2, (canvas.shape[1] - cov.shape[1]) // 2
    canvas[top : top + cov.shape[0], left : left + cov.shape[1]] = cov
    return png(1.0 - canvas)


def font_style(label: int, style: str, rng) -> bytes:
    """A flagged 1 or a crossed 7 from the held-out fonts (digitlab.data.synthetic), dark on white."""
    from digitlab.data.synthetic import available_fonts, render_digit

    fonts = available_fonts("test")
    font = fonts[int(rng.integers(len(fonts)))]
    ink = render_digit(label, font, style=style, size=int(rng.integers(48, 160)), rng=rng)
    return png(255 - ink)


def stress_set(name: str, images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> list[tuple[bytes, int]]:
    """n images of the stress set `name` (one of STRESS_SETS), from MNIST test digits drawn at random."""
    rng = np.random.default_rng([seed, STRESS_SETS.index(name)])
    if name in ("flagged1", "crossed7"):
        label = 1 if name == "flagged1" else 7
        return [(font_style(label, name, rng), label) for _ in range(n)]
    if name == "blank":
        return [(pencil_photo(None, rng), NO_DIGIT) for _ in range(n)]
    rows = rng.choice(len(images), size=min(n, len(images)), replace=False)
    make = {
        "tight16": lambda d: tight_crop(d, 16),
        "tight8": lambda d: tight_crop(d, 8),
        "photo": lambda d: photo(d, rng),
        "shadow": lambda d: shadowed_photo(d, rng, table=False),
        "table": lambda d: shadowed_photo(d, rng, table=True),
        "ruled": lambda d: lined_paper(d, rng, grid=False),
        "grid": lambda d: lined_paper(d, rng, grid=True),
        "thin": lambda d: stroke(d, rng, "thin"),
        "thick": lambda d: stroke(d, rng, "thick"),
        "pencil": lambda d: pencil_photo(d, rng),
    }[name]
    return [(make(images[i]), int(labels[i])) for i in rows]
