"""Fine-tuning on a user's labelled digits: the folder read through predict's preprocessing, the
stratified held-out split, MNIST mixed in, and the run end to end on a small generated folder."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.errors import ConfigError
from digitlab.inference.finetune import (
    FinetuneSettings, finetune, holdout_split, mix_with_mnist, read_user_digits, report_lines,
)

PER_LABEL = 4


def _flagged_one(rng, size: int = 96) -> Image.Image:
    """A 1 as much of Europe writes it: a long upstroke flag, no base (dark on white)."""
    img = Image.new("L", (size, size), 255)
    top = (size * 0.55 + rng.uniform(-4, 4), size * 0.12)
    bottom = (size * 0.5 + rng.uniform(-4, 4), size * 0.88)
    flag = (size * 0.12 + rng.uniform(-4, 4), size * 0.62 + rng.uniform(-6, 6))
    ImageDraw.Draw(img).line([flag, top, bottom], fill=0, width=int(rng.integers(5, 9)), joint="curve")
    return img


@pytest.fixture(scope="module")
def my_digits(tmp_path_factory, mnist):
    """DIR/<label>/me_k.png: flagged 1s and MNIST test digits written dark on white; plus a number
    folder, a text file named .png and a blank image, which fine-tuning leaves out."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("my_digits")
    for label in range(10):
        (root / str(label)).mkdir()
        rows = np.flatnonzero(mnist.y_test == label)[20 : 20 + PER_LABEL]
        for k, row in enumerate(rows):
            img = _flagged_one(rng) if label == 1 else Image.fromarray(255 - mnist.x_test[row]).resize((84, 84), Image.BICUBIC)
            img.save(root / str(label) / f"me_{k}.png")
    (root / "42").mkdir()
    Image.new("L", (64, 64), 255).save(root / "42" / "me_n.png")
    (root / "3" / "me_notes.png").write_text("not an image\n")
    Image.new("L", (64, 64), 255).save(root / "5" / "me_blank.png")
    return root


def test_user_digits_are_what_predict_prepares_and_bad_files_are_left_out(my_digits, shipped):
    user = read_user_digits(shipped, my_digits)
    assert user.x.shape == (10 * PER_LABEL, 28, 28) and user.x.dtype == np.uint8
    assert np.bincount(user.y).tolist() == [PER_LABEL] * 10
    first = user.files.index(str(my_digits / "7" / "me_0.png"))
    image28, _ = shipped.prepare(user.files[first])
    assert user.y[first] == 7 and np.abs(user.x[first] / 255.0 - image28).max() <= 0.5 / 255 + 1e-6
    skipped = dict(user.skipped)
    assert "number folder" in skipped[str(my_digits / "42" / "me_n.png")]
    assert "not an image" in skipped[str(my_digits / "3" / "me_notes.png")]
    assert "no digit" in skipped[str(my_digits / "5" / "me_blank.png")]


def test_a_folder_without_usable_digits_is_one_clear_error(tmp_path, shipped):
    (tmp_path / "4").mkdir()
    Image.new("L", (32, 32), 255).save(tmp_path / "4" / "blank.png")
    with pytest.raises(ConfigError, match="no usable digit images.*no digit found"):
        read_user_digits(shipped, tmp_path)


def test_holdout_is_stratified_seeded_and_never_takes_a_whole_label():
    y = np.array([0] * 8 + [1] * 4 + [2] * 1 + [3] * 2)
    train, held = holdout_split(y, 0.25, seed=3)
    assert np.bincount(y[held], minlength=4).tolist() == [2, 1, 0, 1]
    assert sorted([*train, *held]) == list(range(len(y)))
    assert np.array_equal(held, holdout_split(y, 0.25, seed=3)[1])
    assert any(not np.array_equal(held, holdout_split(y, 0.25, seed=s)[1]) for s in range(4, 10))
    assert len(holdout_split(y, 0.0, seed=0)[1]) == 0
    assert np.bincount(y[holdout_split(y, 0.9, seed=0)[0]], minlength=4).tolist() == [1, 1, 1, 1]


def test_mix_repeats_the_users_images_to_their_share():
    x_user, y_user = np.full((10, 28, 28), 7, np.uint8), np.arange(10) % 10
    x_mnist, y_mnist = np.zeros((1000, 28, 28), np.uint8), np.zeros(1000, np.int64)
    x, y = mix_with_mnist(x_user, y_user, x_mnist, y_mnist, FinetuneSettings(mnist_images=700, user_share=0.3))
    users = (x[:, 0, 0] == 7).sum()
    assert len(x) == len(y) == 700 + users and users == 300 and y.dtype == np.int64
    x, _ = mix_with_mnist(x_user, y_user, x_mnist, y_mnist, FinetuneSettings(mnist_images=0, user_share=0.3))
    assert len(x) == 10  # nothing to mix: each of the user's images once


@pytest.mark.parametrize("kwargs", [{"holdout": 1.0}, {"holdout": -0.1}, {"mnist_images": -1}, {"user_share": 0}])
def test_bad_settings_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        FinetuneSettings(**kwargs)


@pytest.mark.slow
def test_finetune_end_to_end_learns_the_users_style_and_keeps_mnist(my_digits, shipped, mnist):
    from digitlab.evaluate.metrics import predict_proba
    from digitlab.models.storage import load_model
    from digitlab.train.config import TrainConfig

    user = read_user_digits(shipped, my_digits)
    model = load_model(None)
    original = copy.deepcopy(model.state_dict())
    settings = FinetuneSettings(holdout=0.25, mnist_images=400, user_share=0.3, seed=0)
    train_idx, _ = holdout_split(user.y, settings.holdout, settings.seed)

    def true_class_probability(m) -> float:
        p = predict_proba(m, user.x[train_idx])
        return float(p[np.arange(len(train_idx)), user.y[train_idx]].mean())

    before = true_class_probability(model)
    config = TrainConfig.from_flat(epochs=2, optimizer="sgd", lr=0.01, augment="affine", label_smoothing=0.1,
                         device="cpu", threads=1)
    result = finetune(model, user, mnist, config, settings, verbose=False)
    r = result.report
    assert r["images"] == 40 and r["holdout_images"] == 10 and r["train_images"] == 30
    assert r["mixed_set"] == {"images": 400 + r["mixed_set"]["user_copies"], "mnist_images": 400,
                              "user_copies": 30 * 6}  # ceil(0.3 * 400 / 0.7 / 30) = 6 copies each
    assert r["holdout"]["n"] == 10 and r["mnist_test"]["n"] == len(mnist.y_test)
    assert r["mnist_test"]["before"] > 0.99 and r["mnist_test"]["after"] > 0.97  # nothing forgotten
    assert r["holdout"]["after"] >= 0.9
    assert true_class_probability(model) > before  # it learnt the user's digits
    assert any(not np.array_equal(original[k].numpy(), v.numpy()) for k, v in model.state_dict().items())
    assert result.test["accuracy"] == pytest.approx(r["mnist_test"]["after"])
    text = "\n".join(report_lines(r))
    assert "30 for training, 10 held out (25% of each label, seed 0)" in text and "before ->" in text


@pytest.mark.slow
def test_train_images_cli_saves_a_run_that_loads_and_reports_before_and_after(capsys, my_digits, tmp_path):
    import json

    from digitlab.cli.main import main
    from digitlab.models.storage import load_model

    out = tmp_path / "mine"
    argv = ["train", "--images", str(my_digits), "--epochs", "1", "--mix-mnist", "300", "--threads", "1",
            "--device", "cpu", "-o", str(out), "--json"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "10 held out (25% of each label" in text and "MNIST test (10,000):" in text and "Saved to" in text
    metrics = json.loads(text.strip().splitlines()[-1])
    assert metrics["finetune"]["from"] == "pretrained" and metrics["finetune"]["holdout"]["n"] == 10
    saved_config = load_model(out).digitlab_meta["train_config"]
    assert saved_config["epochs"] == 1
    assert saved_config["regularisation"]["blend_start"] == 0.5  # blended back: keeps what the model knew
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["finetune"]["mnist_test"]["after"] == pytest.approx(saved["test_accuracy"])
    # Never over a saved model; and flags of a training from scratch are refused, in one line.
    assert main(argv) == 2 and "already holds a model" in capsys.readouterr().err
    assert main([*argv[:-3], "-o", str(tmp_path / "other"), "--preset", "best"]) == 2
    err = capsys.readouterr().err
    assert "drop --preset" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "other").exists()
