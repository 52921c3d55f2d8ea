"""Pictures that show what the model saw: a grid for `predict --show`, boxes for `read --show`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import ImageDraw, ImageFont

from digitlab.errors import ImageError
from digitlab.files import atomic_path, save_figure
from digitlab.inference.decode import load_image
from digitlab.inference.preprocess import apply_exif_orientation

GRID_LIMIT = 60  # inputs drawn in one grid; more would be unreadable


def _label(p) -> tuple[str, str]:
    """(text, colour) for a Prediction."""
    if p.error:
        return "error", "red"
    if p.digit is None:
        return "no digit", "grey"
    text = f"{p.digit}  {p.confidence:.2f}"
    return (text + "  unsure", "darkorange") if p.unsure else (text, "green")


def prediction_grid(inputs, predictions, path: str | Path, max_pixels: int) -> Path:
    """PNG with one row per input: the image as given, the 28x28 the model saw, the answer."""
    pairs = list(zip(inputs, predictions))[:GRID_LIMIT]
    cols = 3 if len(pairs) > 8 else 1
    rows = -(-len(pairs) // cols)
    fig = Figure(figsize=(3.2 * cols, 1.6 * rows))  # its own Agg canvas: no pyplot state
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 2 * cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (item, pred) in enumerate(pairs):
        r, c = divmod(k, cols)
        try:
            image, _ = load_image(item, max_pixels=max_pixels)
            image = apply_exif_orientation(image)
            image.thumbnail((256, 256))
            axes[r, 2 * c].imshow(np.asarray(image.convert("RGB")))
        except ImageError:
            pass
        name = Path(str(pred.source)).name if pred.source else f"#{k}"
        axes[r, 2 * c].set_title(name[:24], fontsize=7)
        if pred.image28 is not None:
            axes[r, 2 * c + 1].imshow(pred.image28, cmap="gray", vmin=0, vmax=1)
        text, colour = _label(pred)
        axes[r, 2 * c + 1].set_title(text, fontsize=8, color=colour)
    if len(predictions) > GRID_LIMIT:
        fig.suptitle(f"first {GRID_LIMIT} of {len(predictions)} inputs", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def reading_overlay(image, reading, path: str | Path) -> Path:
    """PNG of `image` (PIL, orientation applied) with each digit's box and answer drawn on it."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    size = max(12, int(0.05 * max(canvas.size)))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    width = max(2, size // 8)
    for k, (pred, (x0, y0, x1, y1)) in enumerate(zip(reading.digits, reading.boxes)):
        colour = (230, 120, 0) if pred.unsure else (20, 160, 40)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
        # Labels alternate above and below the boxes, so narrow neighbours' labels do not collide.
        y = max(0, y0 - size - 2) if k % 2 == 0 else min(canvas.height - size - 2, y1 + 2)
        draw.text((x0, y), f"{pred.digit} {pred.confidence:.2f}", fill=colour, font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
