"""Learning curves: two panels, train blue and test orange (the article's colours), accuracy in %,
every fold overlaid."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_rgba

from digitlab.viz.curves import learning_curves_figure


def _history(offset=0.0, epochs=4):
    return {"loss": [0.5 - 0.1 * i + offset for i in range(epochs)],
            "accuracy": [0.8 + 0.04 * i for i in range(epochs)],
            "val_loss": [0.45 - 0.08 * i for i in range(epochs)],
            "val_accuracy": [0.82 + 0.03 * i for i in range(epochs)]}


def _lines(ax, color):
    return [line for line in ax.lines if to_rgba(line.get_color())[:3] == to_rgba(color)[:3]]


def test_folds_are_overlaid_in_two_panels():
    folds = [_history(0.01 * k) for k in range(5)]
    fig = learning_curves_figure(folds, title="cv", val_label="test fold")
    loss_ax, acc_ax = fig.axes
    assert "loss" in loss_ax.get_title().lower() and "accuracy" in acc_ax.get_title().lower()
    assert "5 folds" in loss_ax.get_title()
    for ax, key in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        train, test = _lines(ax, "tab:blue"), _lines(ax, "tab:orange")
        assert len(train) == 5 and len(test) == 5
        scale = 100 if key == "accuracy" else 1  # accuracy in %, as everywhere in the report
        assert list(train[2].get_ydata()) == pytest.approx([scale * v for v in folds[2][key]])
        assert list(test[4].get_ydata()) == pytest.approx([scale * v for v in folds[4][f"val_{key}"]])
        assert list(train[0].get_xdata()) == [1, 2, 3, 4]  # epochs count from 1
        assert ax.get_xlabel() == "epoch"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test fold"]
    assert fig._suptitle.get_text() == "cv"
    assert acc_ax.get_ylabel() == "accuracy (%)"


def test_single_history_without_validation_has_train_lines_only():
    h = {"loss": [0.3, 0.2], "accuracy": [0.9, 0.95]}
    fig = learning_curves_figure(h)
    for ax in fig.axes:
        assert len(_lines(ax, "tab:blue")) == 1 and not _lines(ax, "tab:orange")
