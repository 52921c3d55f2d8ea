"""The HTML report: every section for reproduce, cv and train folders; self-contained; notes, not crashes."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from digitlab.errors import ConfigError
from digitlab.workflows.report import build_report, write_report

SECTIONS = {
    "overview": "Overview", "config": "Configuration", "data": "Data", "samples": "Sample images",
    "curves": "Learning curves", "overfitting": "Overfitting read-out", "cv": "Cross-validation",
    "confusion": "Confusion matrix", "misclassified": "Misclassified images",
    "per-class": "Per-class precision, recall and F1", "timings": "Timings", "versions": "Versions and environment",
}


def _section(html: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert match, f"section {sid} missing"
    return match.group(1)


def _images(html: str) -> list[Image.Image]:
    out = []
    for data in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()  # a truncated or invalid PNG raises here
        out.append(image)
    return out


def _assert_all_sections(html: str) -> None:
    for sid, heading in SECTIONS.items():
        assert f"<h2>{heading}</h2>" in _section(html, sid)
        assert f'href="#{sid}"' in html  # the navigation links to it


def _assert_self_contained(html: str) -> None:
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "url(" not in html


def test_reproduce_writes_every_part_and_a_complete_report(reproduce_dir):
    for name in ("reproduce.json", "data.json", "samples.png", "report.html", "train/model.safetensors",
                 "train/diagnostics.json", "train/confusion_matrix.png", "cv/cv.json", "cv-leaky/cv.json"):
        assert (reproduce_dir / name).is_file(), name
    meta = json.loads((reproduce_dir / "reproduce.json").read_text())
    assert meta["article"]["test_accuracy"] == 0.9783 and meta["cv_leaky"] == "cv-leaky"
    assert len(meta["ours"]["cv_scores"]) == 3 and len(meta["ours"]["cv_leaky_scores"]) == 3
    assert meta["config"]["epochs"] == 2 and meta["config"]["optimizer"]["name"] == "rmsprop"
    html = (reproduce_dir / "report.html").read_text()
    _assert_all_sections(html)
    _assert_self_contained(html)
    assert "Left out" not in html
    # samples, train curves, cv curves, leaky cv curves, box plot, confusion matrix, misclassified
    images = _images(html)
    assert len(images) == 7 and all(im.width > 100 and im.height > 100 for im in images)
    overview = _section(html, "overview")
    # The article's figures, accuracy in % as everywhere in the report.
    for figure in ("98.91%", "0.0363", "97.83%", "first fold about 98%, the others above 99%"):
        assert figure in overview
    assert 'class="badge bad">leaky' in overview
    cv = _section(html, "cv")
    assert "fresh model (%)" in cv and "reused model (%)" in cv and "LEAKY" in cv
    ours = json.loads((reproduce_dir / "cv" / "scores.json").read_text())
    assert f"{100 * ours['mean']:.3f}" in cv


def test_cv_folder_report_uses_pooled_out_of_fold_predictions(tmp_path, tiny_dataset):
    from digitlab.workflows.artifacts import write_cv_outputs
    from digitlab.evaluate.crossval import cross_validate
    from digitlab.train.config import TrainConfig

    x, y = tiny_dataset.x_train, tiny_dataset.y_train
    result = cross_validate("mlp", x, y, folds=3, config=TrainConfig.from_flat(epochs=1, batch_size=32, device="cpu"),
                            model_kwargs={"hidden": 32}, output=tmp_path / "cv", reuse_model=True)
    write_cv_outputs(result, x, y, classes=tiny_dataset.classes, dataset="mnist")
    html = build_report(tmp_path / "cv", data_loader=lambda name: tiny_dataset)
    _assert_all_sections(html)
    assert "pooled out-of-fold predictions (500 training images)" in _section(html, "confusion")
    assert "leaky: reused model" in _section(html, "confusion")  # the leak is labelled on the diagnostics too
    assert "LEAKY" in _section(html, "overview")
    # Without a dataset only the data description and the sample grid are left out.
    bare = build_report(tmp_path / "cv")
    assert "Left out" in _section(bare, "data") and "Left out" in _section(bare, "samples")
    assert "Left out" not in _section(bare, "confusion")


def _train_folder(tmp_path, dataset):
    from digitlab.train.config import TrainConfig
    from digitlab.workflows.train_run import train_run

    with contextlib.redirect_stdout(io.StringIO()):
        train_run("mlp", TrainConfig.from_flat(epochs=2, batch_size=32, device="cpu"), dataset, tmp_path / "train",
                  model_kwargs={"hidden": 32}, verbose=False)
    return tmp_path / "train"


def test_train_folder_report_scores_the_model_on_the_test_set(tmp_path, tiny_dataset):
    run = _train_folder(tmp_path, tiny_dataset)
    html = build_report(run, data_loader=lambda name: tiny_dataset)
    _assert_all_sections(html)
    assert "test set (100 images)" in _section(html, "per-class")
    assert "Left out" not in html.replace(_section(html, "cv"), "")  # only CV is missing for a train run
    assert "this folder holds no cross-validation" in _section(html, "cv")
    assert len(_images(html)) == 4  # samples, curves, confusion matrix, misclassified
    assert not any(p.name.endswith(".png") and p.name != "learning_curves.png" for p in run.iterdir())  # read-only


def test_train_folder_report_without_data_leaves_sections_out_with_notes(tmp_path, tiny_dataset):
    from digitlab.errors import DataError

    run = _train_folder(tmp_path, tiny_dataset)

    def unavailable(name):
        raise DataError("mnist not found: use --data-dir")

    html = build_report(run, data_loader=unavailable)
    _assert_all_sections(html)
    for sid in ("data", "samples", "confusion", "misclassified", "per-class"):
        assert "Left out" in _section(html, sid) and "mnist not found" in _section(html, sid)
    assert len(_images(html)) == 1  # the learning curves the folder holds


def test_report_errors(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        build_report(tmp_path / "missing")
    with pytest.raises(ConfigError, match="holds no digitlab run"):
        build_report(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="ending in .html"):
        write_report(tmp_path, tmp_path / "report.pdf")


def test_cli_reproduce_then_report(tmp_path, tiny_dataset, capsys):
    from digitlab.cli.main import main
    from digitlab.data.idx import encode_idx

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name, array in {"train-images-idx3-ubyte": tiny_dataset.x_train, "t10k-images-idx3-ubyte": tiny_dataset.x_test,
                        "train-labels-idx1-ubyte": tiny_dataset.y_train.astype(np.uint8),
                        "t10k-labels-idx1-ubyte": tiny_dataset.y_test.astype(np.uint8)}.items():
        (data_dir / name).write_bytes(encode_idx(array))
    out = tmp_path / "article"
    assert main(["reproduce", "-o", str(out), "--folds", "2", "--epochs", "1", "--data-dir", str(data_dir),
                 "--device", "cpu", "--threads", "1", "--no-with-leaky"]) == 0
    text = capsys.readouterr().out
    assert "Test accuracy:" in text and "(article: 0.9783)" in text
    assert len(re.findall(r"^> \d+\.\d{3}$", text, re.M)) == 2
    assert re.search(r"^Accuracy: mean=\d+\.\d{3} std=\d+\.\d{3}, n=2$", text, re.M)
    assert (out / "report.html").is_file() and not (out / "cv-leaky").exists()
    assert main(["report", str(out), "-o", str(tmp_path / "again.html")]) == 0
    assert "Wrote" in capsys.readouterr().out
    _assert_all_sections((tmp_path / "again.html").read_text())
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_reproduce_runs_the_leaky_protocol_beside_the_honest_one_by_default():
    from digitlab.cli.main import build_parser

    assert build_parser().parse_args(["reproduce"]).with_leaky is True
    assert build_parser().parse_args(["reproduce", "--no-with-leaky"]).with_leaky is False
