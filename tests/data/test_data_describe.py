"""describe() statistics against NumPy references, its text form, and the sample grid figure."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.data.dataset import Dataset
from digitlab.data.describe import describe, format_description, pixel_stats
from digitlab.errors import ConfigError
from digitlab.viz.samples import grid_shape, sample_grid_figure


def make_dataset(n_train=50, n_test=20, classes=tuple("0123456789")) -> Dataset:
    rng = np.random.default_rng(1)
    return Dataset(
        name="tiny",
        x_train=rng.integers(3, 200, size=(n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, size=n_train).astype(np.int64),
        x_test=rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        y_test=(np.arange(n_test) % 4).astype(np.int64),
        classes=classes,
        source="/somewhere",
    )


def test_pixel_stats_match_numpy():
    images = np.random.default_rng(0).integers(0, 256, size=(5000, 28, 28), dtype=np.uint8)  # > one chunk
    stats = pixel_stats(images)
    as_float = images.astype(np.float64)
    assert stats["min"] == images.min() and stats["max"] == images.max()
    assert stats["mean"] == pytest.approx(as_float.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(as_float.std(), rel=1e-12)


def test_describe_counts_shapes_and_labels():
    data = make_dataset()
    desc = describe(data)
    train, test = desc["train"], desc["test"]
    assert train["images_shape"] == [50, 28, 28] and train["count"] == 50
    assert train["images_nbytes"] == 50 * 784 and train["labels_dtype"] == "int64"
    assert train["class_counts"] == np.bincount(data.y_train, minlength=10).tolist()
    assert test["class_counts"] == [5, 5, 5, 5, 0, 0, 0, 0, 0, 0]
    assert test["labels_present"] == [0, 1, 2, 3]
    assert train["first_labels"] == data.y_train[:3].tolist()
    assert train["pixels"]["min"] >= 3 and train["pixels"]["max"] < 200


def test_format_description_prints_what_the_article_prints():
    data = make_dataset(classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"))
    text = format_description(describe(data))
    lines = text.splitlines()
    assert "train_images.shape  (50, 28, 28)  uint8, 39,200 bytes" in lines
    assert "len(test_labels)    20" in lines
    assert any(line.startswith("test_labels") and "[0 1 2 ... 1 2 3]" in line and "values 0-3" in line
               for line in lines)
    assert any(line.split()[:3] == ["9", "Ankle", "boot"] for line in lines)
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "50", "20"]
    assert any(line.startswith("train") and "mean/255" not in line and len(line.split()) == 7 for line in lines)


def test_grid_shape():
    assert grid_shape(9) == (3, 3) and grid_shape(16) == (4, 4) and grid_shape(1) == (1, 1)
    assert grid_shape(10) == (3, 4) and grid_shape(2) == (1, 2)


def test_sample_grid_figure_titles_each_image_with_its_label():
    data = make_dataset()
    fig = sample_grid_figure(data.x_train[:9], data.y_train[:9], n=9, classes=data.classes, title="t")
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 9 and [ax.get_title() for ax in titled] == [str(v) for v in data.y_train[:9]]
    assert all(ax.images[0].get_cmap().name == "gray" for ax in titled)
    np.testing.assert_array_equal(titled[4].images[0].get_array(), data.x_train[4])
    fashion = sample_grid_figure(data.x_train[:5], [9, 0, 1, 2, 3], n=5, classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"))
    assert [ax.get_title() for ax in fashion.axes if ax.get_title()] == [
        "Ankle boot", "T-shirt/top", "Trouser", "Pullover", "Dress"]
    assert len(fashion.axes) == 6  # 2x3 grid, the last cell left empty


def test_sample_grid_figure_rejects_bad_arguments():
    data = make_dataset(n_train=4)
    with pytest.raises(ConfigError, match="n=9 must be between 1 and the number of images"):
        sample_grid_figure(data.x_train, data.y_train, n=9)
    with pytest.raises(ConfigError, match="4 images but 3 labels"):
        sample_grid_figure(data.x_train, data.y_train[:3], n=4)
