"""Diagnostic plots: fold-accuracy box plot, confusion matrix, grid of misclassified images.

Each function returns a matplotlib Figure on its own Agg canvas (no pyplot state, safe in threads);
save it with digitlab.files.save_figure.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from digitlab.errors import ConfigError
from digitlab.viz.samples import grid_shape

TRAIN_COLOR, TEST_COLOR = "tab:blue", "tab:orange"  # as the learning curves
FRESH_COLOR, LEAKY_COLOR = "#3b6ea8", "#c0392b"


def _figure(figsize):
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def cv_boxplot_figure(scores, title: str | None = None, leaky: Sequence[str] = ()):
    """Box-and-whisker plot of fold accuracies (shown in %), with every fold's point and the mean.

    scores: a sequence of accuracies in [0, 1] (one run), or {label: sequence} for several runs side by
    side (e.g. fresh model vs reused model). Labels listed in `leaky` are drawn in red and tagged.
    Returns a Figure with one Axes.
    """
    groups: Mapping[str, Sequence[float]] = scores if isinstance(scores, Mapping) else {"folds": scores}
    if not groups or any(len(v) == 0 for v in groups.values()):
        raise ConfigError("the box plot needs at least one fold score per run")
    labels = list(groups)
    data = [100.0 * np.asarray(groups[k], dtype=float) for k in labels]
    fig = _figure((max(6.4, 3.4 * len(labels) + 2.0), 5.6))
    ax = fig.subplots()
    colors = [LEAKY_COLOR if k in leaky else FRESH_COLOR for k in labels]
    box = ax.boxplot(data, widths=0.45, showmeans=True, meanline=False, patch_artist=True, showfliers=False,
                     meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black",
                                "markersize": 7},
                     medianprops={"color": "black"})
    box_labels = [f"{k}\n(leaky)" if k in leaky else k for k in labels]
    ax.set_xticks(range(1, len(labels) + 1), box_labels)
    rng = np.random.default_rng(0)  # fixed jitter: the same scores give the same picture
    for i, (values, color) in enumerate(zip(data, colors), start=1):
        box["boxes"][i - 1].set(facecolor=color, alpha=0.25, edgecolor=color)
        ax.scatter(i + rng.uniform(-0.08, 0.08, len(values)), values, color=color, zorder=3, s=28,
                   edgecolor="white", linewidth=0.6, label="fold accuracy" if i == 1 else None)
        mean, std = values.mean(), values.std()
        ax.annotate(f"mean {mean:.2f}\nstd {std:.2f}", (i + 0.3, mean), fontsize=9, va="center")
    ax.plot([], [], "D", color="white", markeredgecolor="black", label="mean")
    ax.set_xlim(0.5, len(labels) + 0.9)
    # Head-room below the lowest fold for the legend, so it never hides a point.
    low, high = min(v.min() for v in data), max(v.max() for v in data)
    span = max(high - low, 0.2)
    ax.set_ylim(low - 0.45 * span, high + 0.15 * span)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or f"Cross-validation accuracy ({len(data[0])} folds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=9, ncol=2)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(cm, classes: Sequence[str] | None = None, title: str | None = None):
    """Counts in every cell, coloured by the row-normalised rate (each true class sums to 1).

    cm: int (C, C) confusion matrix, rows = true class, columns = predicted class.
    Returns a Figure with two Axes: the matrix and its colour bar.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ConfigError(f"a confusion matrix must be square, got shape {cm.shape}")
    k = cm.shape[0]
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = _figure((1.0 + 0.62 * k, 0.6 + 0.55 * k))
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else ("#b03a2e" if i != j else "black"))
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or f"Confusion matrix ({int(cm.sum()):,} images)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    return fig


def misclassified_figure(images: np.ndarray, true: Sequence[int], pred: Sequence[int],
                         confidence: Sequence[float], classes: Sequence[str] | None = None,
                         n: int = 25, title: str | None = None):
    """A grid of misclassified images, in the order given (pass the worst first).

    images: (N, 28, 28) uint8 0-255 (or float 0-1); true/pred: int labels (N,); confidence: the
    predicted class's probability in [0, 1] (N,). Each title reads "true 4 / pred 9" and "97.3%".
    With no images, the Figure says so (one Axes, no image).
    """
    images = np.asarray(images)
    count = min(n, len(images))
    if not len(true) == len(pred) == len(confidence) == len(images):
        raise ConfigError("images, true labels, predictions and confidences must have the same length")
    names = list(classes) if classes is not None else None
    label = (lambda c: names[c]) if names else str
    if count == 0:
        fig = _figure((4, 1.5))
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=12)
        return fig
    rows, cols = grid_shape(count)
    fig = _figure((1.45 * cols, 1.7 * rows + (0.45 if title else 0)))
    axes = fig.subplots(rows, cols, squeeze=False)
    vmax = 255 if images.dtype == np.uint8 else 1.0
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= count:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"true {label(int(true[i]))} / pred {label(int(pred[i]))}\n{100 * confidence[i]:.1f}%",
                     fontsize=8, color="#b03a2e")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
