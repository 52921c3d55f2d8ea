"""Learning curves as the article draws them, improved: two panels (cross-entropy loss, accuracy in
%), train in blue and test in orange (the article's colours, safe for colour-blind readers), every run
overlaid, with axis labels, a legend and epoch ticks."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

TRAIN_COLOR, TEST_COLOR = "tab:blue", "tab:orange"


def learning_curves_figure(histories, title: str | None = None, val_label: str = "test"):
    """histories: one History (dict of lists) or a sequence of them (e.g. one per CV fold).

    Returns a matplotlib Figure with two Axes: [loss, accuracy], on its own Agg canvas (no pyplot state).
    """
    if isinstance(histories, dict):
        histories = [histories]
    histories = list(histories)
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    panels = ((ax_loss, "loss", "Cross-entropy loss"), (ax_acc, "accuracy", "Classification accuracy"))
    scale = {"loss": 1.0, "accuracy": 100.0}  # accuracy in %, as everywhere in the report
    many = len(histories) > 1
    for i, hist in enumerate(histories):
        for ax, key, _ in panels:
            train = [scale[key] * v for v in hist.get(key, [])]
            epochs = range(1, len(train) + 1)
            alpha = 0.75 if many else 1.0
            ax.plot(epochs, train, color=TRAIN_COLOR, alpha=alpha, marker="o", ms=3,
                    label="train" if i == 0 else None)
            if hist.get(f"val_{key}"):
                ax.plot(epochs, [scale[key] * v for v in hist[f"val_{key}"]], color=TEST_COLOR, alpha=alpha,
                        marker="o", ms=3, label=val_label if i == 0 else None)
    for ax, key, name in panels:
        ax.set_title(name + (f" ({len(histories)} folds)" if many else ""))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)" if key == "accuracy" else key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
