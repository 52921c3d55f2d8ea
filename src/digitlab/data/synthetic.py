"""Digits rendered from the machine's fonts, in the handwriting styles MNIST under-represents.

MNIST's writers were American: its 1s are bare strokes and its 7s are rarely crossed, so a model
trained on it alone reads a European 1 (a long upstroke flag, often a base) as a 7. Fonts print 1s,
7s, 4s and 9s the other ways, and a few strokes add the styles fonts lack.

- `available_fonts(split)`: font files that draw all ten digits: matplotlib's bundled DejaVu and
  STIX (always there) and the Debian handwriting-like families when installed. The "train" and
  "test" splits are fixed by a stable hash of the file name, so held-out fonts stay held out.
- `render_digit(label, font, style=..., size=...)`: one digit, uint8 (size, size), white ink on black.
- `font_digits(n, seed=..., split=...)`: n MNIST-framed digits (uint8 (n, 28, 28)) and labels.

numpy and Pillow only: no torch here.
"""

from __future__ import annotations

import functools
import importlib.util
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digitlab.errors import ConfigError

STYLES = ("plain", "flagged1", "crossed7", "open4", "straight9", "thick")
# The digit each special style draws; "plain" and "thick" draw any digit.
STYLE_DIGIT = {"flagged1": 1, "crossed7": 7, "open4": 4, "straight9": 9}
SPLITS = ("train", "test", "all")
# Debian packages' folders under /usr/share/fonts (fonts-dkg-handwriting installs "fifthhorseman").
HANDWRITING_FOLDERS = ("fifthhorseman", "breip", "bwht", "femkeklaver", "comic-neue", "dancingscript")
FONT_ROOT = Path("/usr/share/fonts")
TEST_SHARE = 4  # one font file in TEST_SHARE is held out, by the CRC-32 of its name

_CANVAS, _FONT_PX, _TOP, _BOTTOM = 160, 100, 30, 130  # rendering canvas, font size, stroke-glyph extent


def _matplotlib_fonts() -> list[Path]:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"
    return sorted(p for p in folder.glob("*.ttf") if p.name.startswith(("DejaVuSans", "DejaVuSerif", "STIXGeneral")))


def _handwriting_fonts(root: Path = FONT_ROOT) -> list[Path]:
    found = []
    for folder in HANDWRITING_FOLDERS:
        for sub in ("truetype", "opentype"):
            found += [p for p in (root / sub / folder).glob("*") if p.suffix.lower() in (".ttf", ".otf")]
    return sorted(found)


@functools.lru_cache(maxsize=None)
def _load_font(path: str, px: int = _FONT_PX):
    try:
        return ImageFont.truetype(path, px)
    except OSError as exc:
        raise ConfigError(f"cannot load font {path}: {exc}; pass a .ttf or .otf file") from None


def _draws_digits(path: Path) -> bool:
    """True when the font has ten distinct, non-empty digit glyphs (not its missing-glyph box)."""
    try:
        font = _load_font(str(path), 32)
    except ConfigError:
        return False
    masks = set()
    for ch in "0123456789\ue000":  # U+E000 (private use) shows the font's missing-glyph shape
        mask = font.getmask(ch)
        masks.add((mask.size, bytes(mask)))
        if ch != "\ue000" and (mask.size[0] == 0 or not any(bytes(mask))):
            return False
    return len(masks) == 11


def _is_test_font(path: Path) -> bool:
    return zlib.crc32(path.name.encode()) % TEST_SHARE == 0


@functools.lru_cache(maxsize=None)
def _usable_fonts() -> tuple[Path, ...]:
    return tuple(p for p in (*_matplotlib_fonts(), *_handwriting_fonts()) if _draws_digits(p))


def available_fonts(split: str = "all") -> list[Path]:
    """The font files usable for digits, sorted; `split` is "train", "test" (held-out fonts) or "all".

    Each split holds at least one font: if the hash leaves one empty, the first font by name moves over.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown font split {split!r}: choose one of {', '.join(SPLITS)}")
    fonts = sorted(_usable_fonts(), key=lambda p: p.name)
    if len(fonts) < 2:
        raise ConfigError("fewer than two usable fonts found: install matplotlib (it bundles DejaVu and STIX)")
    test = [p for p in fonts if _is_test_font(p)]
    if not test:
        test = fonts[:1]
    elif len(test) == len(fonts):
        test = fonts[1:]
    if split == "all":
        return fonts
    return test if split == "test" else [p for p in fonts if p not in test]


def _stem_width(font_path: str) -> float:
    """The font's stroke width in canvas pixels: the ink across the middle row of its 1."""
    ink = _glyph(1, font_path, 0)
    rows = np.nonzero(ink.any(axis=1))[0]
    return max(4.0, float((ink[(rows[0] + rows[-1]) // 2] > 127).sum()))


def _glyph(label: int, font_path: str, stroke: int):
    """The font's digit on a black canvas, uint8 (_CANVAS, _CANVAS); `stroke` px of extra outline."""
    font = _load_font(font_path)
    img = Image.new("L", (_CANVAS, _CANVAS), 0)
    left, top, right, bottom = font.getbbox(str(label), stroke_width=stroke)
    origin = ((_CANVAS - (right - left)) / 2 - left, (_CANVAS - (bottom - top)) / 2 - top)
    ImageDraw.Draw(img).text(origin, str(label), font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img)


def _polyline(draw, points, width: float) -> None:
    """Round-capped, round-jointed strokes through `points`, as a pen draws."""
    w = max(1, int(round(width)))
    draw.line(points, fill=255, width=w, joint="curve")
    for x, y in points:
        draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=255)


def _stroke_digit(style: str, width: float, rng) -> np.ndarray:
    """The stroke-drawn styles (flagged 1, open 4, straight-stemmed 9) on a black canvas."""
    img = Image.new("L", (_CANVAS, _CANVAS), 0)
    draw, h, cx = ImageDraw.Draw(img), _BOTTOM - _TOP, _CANVAS / 2
    if style == "flagged1":
        lean = rng.uniform(-0.08, 0.08) * h
        top, foot = (cx + lean, _TOP), (cx - lean, _BOTTOM)
        angle, length = np.radians(rng.uniform(30, 65)), rng.uniform(0.3, 0.6) * h
        flag = (top[0] - length * np.sin(angle), top[1] + length * np.cos(angle))
        _polyline(draw, [flag, top, foot], width)
        if rng.random() < 0.5:  # a base serif
            half = rng.uniform(0.18, 0.32) * h
            _polyline(draw, [(foot[0] - half, foot[1]), (foot[0] + half, foot[1])], width)
    elif style == "open4":
        bar_y, stem_x, left = _TOP + rng.uniform(0.55, 0.7) * h, cx + rng.uniform(0.05, 0.15) * h, cx - 0.35 * h
        arm_top = (stem_x - rng.uniform(0.15, 0.3) * h, _TOP)
        _polyline(draw, [arm_top, (left, bar_y), (stem_x + rng.uniform(0.12, 0.22) * h, bar_y)], width)
        _polyline(draw, [(stem_x, _TOP + rng.uniform(0.0, 0.15) * h), (stem_x, _BOTTOM)], width)
    else:  # straight9: a loop and a straight stem
        r = rng.uniform(0.2, 0.27) * h
        loop = (cx - r, _TOP, cx + r, _TOP + 2 * r * rng.uniform(0.85, 1.1))
        draw.ellipse(loop, outline=255, width=max(1, int(round(width))))
        stem_x = cx + r - width / 2
        _polyline(draw, [(stem_x, _TOP + r), (stem_x - rng.uniform(0.0, 0.12) * h, _BOTTOM)], width)
    return np.asarray(img)


def _cross_seven(ink: np.ndarray, width: float, rng) -> np.ndarray:
    """The font's 7 with a bar across its stem, a little below the middle."""
    rows = np.nonzero(ink.any(axis=1))[0]
    y = int(rows[0] + (rows[-1] - rows[0]) * rng.uniform(0.45, 0.6))
    cols = np.nonzero(ink[y] > 127)[0]
    centre = float(cols.mean()) if len(cols) else _CANVAS / 2
    half = rng.uniform(0.15, 0.25) * (rows[-1] - rows[0])
    img = Image.fromarray(ink.copy())
    _polyline(ImageDraw.Draw(img), [(centre - half, y), (centre + half, y)], width)
    return np.asarray(img)


def _fit(ink: np.ndarray, size: int, margin: float) -> np.ndarray:
    """Crop to the ink's box and scale it (aspect kept) into the middle of a size x size frame."""
    ys, xs = np.nonzero(ink)
    box = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    inner = max(1, int(round(size * (1 - 2 * margin))))
    scale = inner / max(box.shape)
    h, w = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    small = np.asarray(Image.fromarray(box).resize((w, h), Image.LANCZOS))
    out = np.zeros((size, size), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = small
    return out


def render_digit(label: int, font: Path, *, style: str = "plain", size: int = 64, rng=None) -> np.ndarray:
    """One digit in `font`, uint8 (size, size): white ink (255) on black (0), drawn whole with a margin.

    style: one of STYLES. "flagged1", "crossed7", "open4" and "straight9" draw only their digit;
    flagged 1s, open 4s and straight 9s are drawn as pen strokes in the font's stroke width (fonts'
    own flags are short). rng: a numpy Generator for the strokes' random shape (None: seed 0).
    """
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
        raise ConfigError(f"label must be a digit 0-9, got {label!r}")
    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r}: choose one of {', '.join(STYLES)}")
    if style in STYLE_DIGIT and STYLE_DIGIT[style] != label:
        raise ConfigError(f"style {style!r} draws only the digit {STYLE_DIGIT[style]}, got {label}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ConfigError(f"size must be a whole number of pixels >= 8, got {size!r}")
    if not Path(font).is_file():
        raise ConfigError(f"font file {font} not found: pick one from digitlab.data.synthetic.available_fonts()")
    rng = rng if rng is not None else np.random.default_rng(0)
    path = str(font)
    width = _stem_width(path)
    if style in ("flagged1", "open4", "straight9"):
        ink = _stroke_digit(style, width * rng.uniform(0.9, 1.3), rng)
    elif style == "thick":
        ink = _glyph(int(label), path, int(round(rng.uniform(0.15, 0.4) * width)))
    else:
        ink = _glyph(int(label), path, 0)
        if style == "crossed7":
            ink = _cross_seven(ink, width, rng)
    if not ink.any():
        raise ConfigError(f"font {Path(font).name} draws no ink for the digit {label}: pick another font")
    return _fit(ink, int(size), margin=0.1)


def mnist_frame(ink: np.ndarray) -> np.ndarray:
    """A digit image (uint8, white on black) framed as MNIST: its ink box scaled (aspect kept) to 20 px
    on the longer side, anti-aliased, and placed in 28x28 with its centre of mass at the centre."""
    ys, xs = np.nonzero(ink)
    box = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = 20 / max(box.shape)
    h, w = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    small = np.asarray(Image.fromarray(box).resize((w, h), Image.LANCZOS)).astype(np.float64)
    mass = small.sum() or 1.0
    cy = (small.sum(axis=1) * np.arange(h)).sum() / mass + 0.5
    cx = (small.sum(axis=0) * np.arange(w)).sum() / mass + 0.5
    top, left = int(np.clip(round(14 - cy), 0, 28 - h)), int(np.clip(round(14 - cx), 0, 28 - w))
    out = np.zeros((28, 28), np.uint8)
    out[top : top + h, left : left + w] = np.clip(small, 0, 255).astype(np.uint8)
    return out


# How often each digit is drawn in each style by font_digits (the rest: "plain").
STYLE_SHARE = {1: {"flagged1": 0.5, "thick": 0.1}, 7: {"crossed7": 0.4, "thick": 0.1},
               4: {"open4": 0.3, "thick": 0.1}, 9: {"straight9": 0.3, "thick": 0.1}}
DEFAULT_SHARE = {"thick": 0.2}


def _pick_style(label: int, styles: tuple, rng) -> str:
    if styles:
        usable = [s for s in styles if STYLE_DIGIT.get(s, label) == label]
        return usable[int(rng.integers(len(usable)))]
    share = STYLE_SHARE.get(label, DEFAULT_SHARE)
    u, total = rng.random(), 0.0
    for style, p in share.items():
        total += p
        if u < total:
            return style
    return "plain"


def _distort(img: np.ndarray, rng) -> np.ndarray:
    """A random rotation (+-12 degrees), shear (+-0.3) and stroke width (thinner or thicker) of a
    size x size render, as writers differ."""
    pic = Image.fromarray(img)
    angle, shear = np.radians(rng.uniform(-12, 12)), rng.uniform(-0.3, 0.3)
    c, s, half = np.cos(angle), np.sin(angle), img.shape[0] / 2
    # output -> input map: rotation @ shear about the centre
    a, b, d, e = c, c * shear - s, s, s * shear + c
    coeffs = (a, b, half - a * half - b * half, d, e, half - d * half - e * half)
    pic = pic.transform(pic.size, Image.AFFINE, coeffs, resample=Image.BILINEAR)
    u = rng.random()
    if u < 0.25:
        pic = pic.filter(ImageFilter.MaxFilter(3))
    elif u < 0.4:
        thinner = pic.filter(ImageFilter.MinFilter(3))
        if np.asarray(thinner).max() > 127:  # never erase a thin font's strokes
            pic = thinner
    return np.asarray(pic)


def font_digits(n: int, *, seed: int = 0, split: str = "train", styles=None) -> tuple[np.ndarray, np.ndarray]:
    """n digits rendered from the fonts of `split`, framed as MNIST.

    Returns (images, labels): uint8 (n, 28, 28), white ink on black, 0-255, and int64 (n,). Labels
    are balanced over the digits the styles can draw (all ten by default); the mix of styles is
    STYLE_SHARE (half the 1s flagged, 40% of the 7s crossed). Each image has its own font, rotation,
    shear and stroke width, all drawn from `seed`. styles: restrict to these (e.g. ["flagged1"]).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be a whole number >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    if isinstance(styles, str):
        styles = [styles]
    styles = tuple(styles or ())
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise ConfigError(f"unknown style {unknown[0]!r}: choose from {', '.join(STYLES)}")
    fonts = available_fonts(split)
    digits = sorted({STYLE_DIGIT.get(s, d) for s in styles for d in range(10) if STYLE_DIGIT.get(s, d) == d}) \
        if styles else list(range(10))
    rng = np.random.default_rng(seed)
    labels = np.array(digits, np.int64)[np.arange(n) % len(digits)]
    rng.shuffle(labels)
    images = np.empty((n, 28, 28), np.uint8)
    for i, label in enumerate(labels):
        font = fonts[int(rng.integers(len(fonts)))]
        img = render_digit(int(label), font, style=_pick_style(int(label), styles, rng), size=64, rng=rng)
        images[i] = mnist_frame(_distort(img, rng))
    return images, labels
