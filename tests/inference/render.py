"""Render real MNIST test digits the way people's own images look, and MNIST numbers.

The label of each rendered image is the label of the MNIST digit drawn into it, so recognising these
images measures the preprocessing (and the model), not the renderer. Each style is one complaint from
users: dark ink on white paper, a digit placed anywhere on a 400x400 canvas, bold or thin pens, JPEG
artefacts, uneven light with a shadow and sensor noise, ruled or squared paper, a small digit drawn
with a fine pen in a large photo, an RGBA export with a transparent background.

Used by tests/inference (a few hundred images) and bench/user_images.py (thousands).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

STYLES = ("plain", "thick", "thin", "jpeg", "lighting", "ruled", "squared", "photo", "rgba")
CANVAS = 400


def digit_coverage(digit: np.ndarray, height: int, longer_side: bool = True) -> np.ndarray:
    """A crisp, anti-aliased ink coverage in [0, 1] of an MNIST digit (uint8 28x28) whose longer side
    (or height, with longer_side=False) is `height` px: bicubic upscaling of the ink's bounding box,
    then a soft threshold (pen ink has sharp edges, not MNIST's blur)."""
    rows, cols = np.flatnonzero(digit.max(1) > 0), np.flatnonzero(digit.max(0) > 0)
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255.0
    scale = height / (max(crop.shape) if longer_side else crop.shape[0])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    up = np.asarray(Image.fromarray(crop).resize(size, Image.BICUBIC), dtype=np.float32)
    edge = max(0.06, min(0.25, 1.0 / scale))  # ~1 px of anti-aliasing whatever the scale
    # Threshold a little below half: MNIST's faint strokes (scanned thin pen) stay joined, as ink does.
    return np.clip((up - 0.35) / (2 * edge) + 0.5, 0.0, 1.0)


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a bool mask to 1 px wide lines (vectorised, a few ms at 300x300)."""
    img = np.pad(mask, 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            p = [img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:],
                 img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]]  # P2..P9 clockwise
            count = sum(x.astype(np.int32) for x in p)
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            if step == 0:
                cond = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                cond = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            remove = (c == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & cond
            if remove.any():
                c[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def pen(mask_or_lines: np.ndarray, width: float) -> np.ndarray:
    """Coverage of a round pen of `width` px drawn along the True pixels (anti-aliased)."""
    distance = ndimage.distance_transform_edt(~mask_or_lines)
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0).astype(np.float32)


def styled_coverage(digit: np.ndarray, height: int, style: str, rng: np.random.Generator) -> np.ndarray:
    """The digit's coverage with the stroke style applied: bold, thin pen, or as MNIST drew it."""
    cov = digit_coverage(digit, height)
    normal = 2.6 * height / 20  # MNIST's median stroke at this size
    if style == "thick":  # a marker: ~1.5-2x MNIST's stroke, drawn along the digit's skeleton
        pad = int(normal) + 2
        return pen(skeleton(np.pad(cov, pad) > 0.5), normal * rng.uniform(1.5, 2.0))
    if style == "thin":
        return pen(skeleton(np.pad(cov, 2) > 0.5), max(1.5, normal * rng.uniform(0.35, 0.55)))
    if style == "photo":
        return pen(skeleton(np.pad(cov, 2) > 0.5), rng.uniform(2.0, 3.5))  # a fine pen, a big photo
    return cov


def _place(canvas_shape, cov: np.ndarray, rng) -> np.ndarray:
    """Full-canvas coverage with `cov` at a random position (at least 4 px from the edges)."""
    h, w = canvas_shape
    out = np.zeros(canvas_shape, np.float32)
    y = int(rng.integers(4, max(5, h - cov.shape[0] - 4)))
    x = int(rng.integers(4, max(5, w - cov.shape[1] - 4)))
    ch, cw = min(cov.shape[0], h - y), min(cov.shape[1], w - x)
    out[y : y + ch, x : x + cw] = cov[:ch, :cw]
    return out


def light_field(shape, rng) -> np.ndarray:
    """A multiplicative light field: a linear gradient plus a soft-edged shadow over part of it."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    light = 1.0 - rng.uniform(0.2, 0.45) * ramp
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.25, 0.25) * max(h, w)
    signed = np.cos(angle) * (xx - w / 2) + np.sin(angle) * (yy - h / 2) - offset
    softness = rng.uniform(0.04, 0.12) * max(h, w)
    shadow = 1.0 / (1.0 + np.exp(-signed / softness))
    return light * (1.0 - rng.uniform(0.25, 0.45) * shadow)


def _paper_lines(shape, rng, squared: bool) -> np.ndarray:
    """Coverage of faint printed lines: ruled (horizontal) or squared (both ways)."""
    h, w = shape
    lines = np.zeros(shape, np.float32)
    spacing = int(rng.integers(18, 34) if squared else rng.integers(24, 42))
    thickness = int(rng.integers(1, 3))
    start = int(rng.integers(0, spacing))
    for y in range(start, h, spacing):
        lines[y : y + thickness, :] = 1.0
    if squared:
        for x in range(int(rng.integers(0, spacing)), w, spacing):
            lines[:, x : x + thickness] = 1.0
    return lines * rng.uniform(0.15, 0.3)


def _compose(cov: np.ndarray, rng, lines: np.ndarray | None = None) -> np.ndarray:
    """RGB float image: coloured ink over off-white paper (and any printed lines)."""
    paper = rng.uniform(0.88, 1.0) - np.array([0.0, rng.uniform(0, 0.03), rng.uniform(0, 0.06)])
    ink = np.array([0.05, 0.05, 0.08]) if rng.random() < 0.6 else np.array([0.08, 0.12, 0.45])
    ink = ink * rng.uniform(0.5, 1.5)
    img = np.broadcast_to(paper, cov.shape + (3,)).astype(np.float32)
    if lines is not None:
        line_colour = np.array([0.55, 0.7, 0.95], np.float32)  # printed blue-grey
        img = img * (1 - lines[..., None]) + line_colour * paper * lines[..., None]
    return img * (1 - cov[..., None]) + ink * cov[..., None]


def _encode(img: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8))
    pil.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def render_user_image(digit: np.ndarray, style: str, rng: np.random.Generator) -> bytes:
    """Encoded image bytes (PNG, or JPEG for the JPEG and photo styles) of an MNIST digit drawn in
    `style` (one of STYLES) the way a user would send it."""
    if style == "photo":
        h, w = int(rng.integers(600, 900)), int(rng.integers(800, 1200))
        height = int(rng.uniform(0.1, 0.3) * h)
    else:
        h = w = CANVAS
        height = int(rng.integers(60, 320))
    cov = _place((h, w), styled_coverage(digit, height, style, rng), rng)
    if style == "rgba":
        light_ink = rng.random() < 0.3  # a drawing app's white strokes on transparency
        colour = np.full(3, 0.95) if light_ink else np.array([0.05, 0.05, 0.1])
        rgba = np.concatenate([cov[..., None] * colour, cov[..., None]], axis=2)  # transparent = (0,0,0,0)
        return _encode(rgba)
    lines = _paper_lines((h, w), rng, style == "squared") if style in ("ruled", "squared") else None
    img = _compose(cov, rng, lines)
    if style in ("lighting", "photo"):
        img = img * light_field((h, w), rng)[..., None] + rng.normal(0, rng.uniform(0.01, 0.04), img.shape)
    if style in ("jpeg", "photo"):
        return _encode(img, "JPEG", int(rng.integers(25, 70) if style == "jpeg" else rng.integers(75, 92)))
    return _encode(img)


def render_user_set(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0):
    """[(bytes, label, style)] for the first `n` digits, cycling through the styles."""
    rng = np.random.default_rng(seed)
    return [
        (render_user_image(images[i], STYLES[i % len(STYLES)], rng), int(labels[i]), STYLES[i % len(STYLES)])
        for i in range(n)
    ]


def render_number(digits: list[np.ndarray], rng: np.random.Generator) -> bytes:
    """PNG of MNIST digits written left to right as one number: dark ink on white paper, digits of
    one height (+-10%, as people write; MNIST itself scaled each digit's longer side to 20 px),
    random spacing from a slight overlap (up to 15% of the narrower digit) to half a digit height,
    a little vertical jitter."""
    box = 20 * rng.uniform(2.0, 4.0)
    covs = [digit_coverage(d, int(round(box * rng.uniform(0.9, 1.1))), longer_side=False) for d in digits]
    # An overlap is a fraction of the narrower neighbour (two 1s may overlap by a pixel or two only).
    gaps = []
    for left, right in zip(covs, covs[1:]):
        u = rng.uniform(-0.15, 0.5)
        gaps.append(int(u * (min(left.shape[1], right.shape[1]) if u < 0 else box)))
    gaps.append(0)
    width = int(sum(c.shape[1] for c in covs) + sum(gaps) + 2 * box)
    height = int(box * 2)
    canvas = np.zeros((height, width), np.float32)
    x = int(box)
    for cov, gap in zip(covs, gaps):
        y = int((height - cov.shape[0]) / 2 + rng.uniform(-0.1, 0.1) * box)
        region = canvas[y : y + cov.shape[0], x : x + cov.shape[1]]
        np.maximum(region, cov[: region.shape[0], : region.shape[1]], out=region)
        x += cov.shape[1] + gap
    img = _compose(canvas, rng) + rng.normal(0, 0.01, (height, width, 3))
    return _encode(img)


def render_number_set(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0,
                      lengths: tuple[int, int] = (3, 6)):
    """[(bytes, number string)] of n numbers of lengths[0] to lengths[1] digits drawn from the given
    MNIST digits."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx = rng.choice(len(images), size=int(rng.integers(lengths[0], lengths[1] + 1)), replace=False)
        out.append((render_number([images[i] for i in idx], rng), "".join(str(int(labels[i])) for i in idx)))
    return out


def naive_28(data: bytes) -> np.ndarray:
    """What a naive script does: decode, grey, resize to 28x28, scale to [0, 1]. No inversion, no
    cropping or centring. float32 (28, 28)."""
    img = Image.open(io.BytesIO(data)).convert("L").resize((28, 28), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0
