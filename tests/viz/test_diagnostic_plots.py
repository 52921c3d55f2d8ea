"""The diagnostic plots: each returns a Figure with the expected axes, artists and labels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from digitlab.errors import ConfigError
from digitlab.viz.diagnostics import (
    FRESH_COLOR, LEAKY_COLOR, confusion_matrix_figure, cv_boxplot_figure, misclassified_figure,
)


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_boxplot_one_run_shows_points_and_mean():
    scores = [0.9772, 0.9753, 0.9710, 0.9785, 0.9756]
    fig = cv_boxplot_figure(scores)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 1
    np.testing.assert_allclose(sorted(points[0].get_offsets()[:, 1]), sorted(100 * np.array(scores)))
    assert ax.get_ylabel() == "accuracy (%)" and "5 folds" in ax.get_title()
    assert f"mean {100 * np.mean(scores):.2f}" in _texts(ax)[0]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"fold accuracy", "mean"}
    mean_markers = [line for line in ax.lines if line.get_marker() == "D" and len(line.get_xdata())]
    assert [float(line.get_ydata()[0]) for line in mean_markers] == pytest.approx([100 * np.mean(scores)])
    low, high = ax.get_ylim()
    assert low < 100 * min(scores) and high > 100 * max(scores)


def test_boxplot_side_by_side_marks_the_leaky_run():
    fig = cv_boxplot_figure({"fresh model": [0.975, 0.976, 0.971], "reused model": [0.99, 0.998, 0.999]},
                            leaky=["reused model"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fresh model", "reused model\n(leaky)"]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    colors = [tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in points]
    from matplotlib.colors import to_rgb

    assert colors == [tuple(np.round(to_rgb(FRESH_COLOR), 3)), tuple(np.round(to_rgb(LEAKY_COLOR), 3))]
    assert len(_texts(ax)) == 2  # one mean/std annotation per run


def test_boxplot_needs_scores():
    with pytest.raises(ConfigError):
        cv_boxplot_figure([])


def test_confusion_matrix_has_counts_and_row_normalised_colours():
    cm = np.array([[50, 0, 2], [1, 40, 0], [0, 10, 30]])
    fig = confusion_matrix_figure(cm, ["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # the matrix and its colour bar
    ax = fig.axes[0]
    image = next(a for a in ax.get_children() if isinstance(a, AxesImage))
    np.testing.assert_allclose(image.get_array(), cm / cm.sum(1, keepdims=True))
    assert image.get_clim() == (0.0, 1.0)
    assert sorted(_texts(ax)) == sorted(str(v) for v in cm.ravel() if v)  # zero cells stay blank
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert "133 images" in ax.get_title()
    with pytest.raises(ConfigError, match="square"):
        confusion_matrix_figure(np.zeros((2, 3)))


def test_misclassified_grid_titles_true_pred_confidence():
    images = np.zeros((7, 28, 28), np.uint8)
    fig = misclassified_figure(images, [1, 2, 3, 4, 5, 6, 7], [7, 3, 5, 9, 6, 0, 1],
                               [0.991, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], n=4, title="worst first")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4  # n caps the grid
    assert shown[0].get_title() == "true 1 / pred 7\n99.1%"
    assert shown[3].get_title() == "true 4 / pred 9\n70.0%"
    assert fig._suptitle.get_text() == "worst first"


def test_misclassified_grid_with_class_names_and_without_errors():
    fig = misclassified_figure(np.zeros((1, 28, 28), np.uint8), [0], [1], [0.5], classes=["shirt", "bag"])
    assert fig.axes[0].get_title().startswith("true shirt / pred bag")
    empty = misclassified_figure(np.zeros((0, 28, 28), np.uint8), [], [], [])
    assert len(empty.axes) == 1 and not empty.axes[0].images
    assert _texts(empty.axes[0]) == ["no misclassified images"]
    with pytest.raises(ConfigError, match="same length"):
        misclassified_figure(np.zeros((2, 28, 28)), [1], [2], [0.5])
