"""A grid of sample images with their labels (the article's first look at the data)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from digitlab.errors import ConfigError


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for n images: sqrt(n) x sqrt(n) for a square n, else the smallest near-square grid."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def sample_grid_figure(images: np.ndarray, labels: Sequence[int] | np.ndarray, n: int = 9,
                       classes: Sequence[str] | None = None, title: str | None = None):
    """A matplotlib Figure (Agg canvas) showing the first `n` images in a grid, labels as titles.

    images: (N, H, W) array, uint8 0-255 or float 0-1, shown with 0 = black background
    labels: (N,) ints; `classes[label]` is shown when given (e.g. Fashion-MNIST names).
    No pyplot: the figure has its own Agg canvas, so no global state or GUI backend is involved.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3:
        raise ConfigError(f"images must be shaped (N, H, W), got {images.shape}")
    if len(labels) != len(images):
        raise ConfigError(f"{len(images)} images but {len(labels)} labels")
    if not 1 <= n <= len(images):
        raise ConfigError(f"n={n} must be between 1 and the number of images ({len(images)})")

    rows, cols = grid_shape(n)
    vmax = 255 if images.dtype == np.uint8 else 1.0
    fig = Figure(figsize=(1.6 * cols, 1.75 * rows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        label = int(labels[i])
        ax.set_title(classes[label] if classes is not None and 0 <= label < len(classes) else str(label),
                     fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
