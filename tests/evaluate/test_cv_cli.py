"""`digitlab cv` end to end on a tiny IDX dataset: the article's output lines, the files, the errors."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from digitlab.cli.main import main

FAST = ["--model-arg", "hidden=64", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--threads", "1"]


def _cv(tmp_path, data_dir, *extra):
    out = tmp_path / "cv"
    return out, ["cv", "--folds", "3", "--data-dir", str(data_dir), "--no-download", "-o", str(out), *FAST, *extra]


def test_cv_prints_the_articles_lines_and_writes_the_outputs(tmp_path, tiny_mnist_dir, capsys):
    out, argv = _cv(tmp_path, tiny_mnist_dir, "--json")
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    folds = [line for line in lines if line.startswith("> ")]
    assert len(folds) == 3 and all(re.fullmatch(r"> \d+\.\d{3}", line) for line in folds)
    summary_line = next(line for line in lines if line.startswith("Accuracy:"))
    assert re.fullmatch(r"Accuracy: mean=\d+\.\d{3} std=\d+\.\d{3}, n=3", summary_line)
    assert any(line.startswith("Overfitting: train accuracy") for line in lines)
    assert any(line.split()[:2] == ["macro", "avg"] for line in lines)

    result = json.loads(lines[-1])  # --json: the last line is one JSON object
    scores = np.array([float(f[2:]) for f in folds]) / 100
    np.testing.assert_allclose(result["scores"], scores, atol=5e-6)
    assert f"mean={100 * np.mean(result['scores']):.3f}" in summary_line
    assert f"std={100 * np.std(result['scores']):.3f}" in summary_line
    assert result["leaky"] is False and len(result["fold_train_time_s"]) == 3

    for name in ("cv.json", "scores.csv", "scores.json", "diagnostics.json", "per_class.csv", "learning_curves.png",
                 "cv_boxplot.png", "confusion_matrix.png", "misclassified.png"):
        assert (out / name).is_file(), name
    assert (out / "folds" / "fold-03-history.csv").is_file()
    with open(out / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["fold"]) for r in rows] == [1, 2, 3] and sum(int(r["n_test"]) for r in rows) == 500
    meta = json.loads((out / "cv.json").read_text())
    assert meta["config"]["epochs"] == 2 and meta["split_seed"] == 1 and meta["model_kwargs"] == {"hidden": 64}
    assert meta["environment"]["versions"]["torch"] and meta["pool_size"] == 500


def test_cv_resume_reuses_saved_folds(tmp_path, tiny_mnist_dir, capsys):
    out, argv = _cv(tmp_path, tiny_mnist_dir, "--json")
    main(argv)
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (out / "folds" / "fold-03.json").unlink()
    assert main(argv + ["--resume"]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["resumed_folds"] == [0, 1] and second["scores"] == first["scores"]


def test_cv_reuse_model_is_labelled_leaky(tmp_path, tiny_mnist_dir, capsys):
    out, argv = _cv(tmp_path, tiny_mnist_dir, "--reuse-model", "--json")
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith("WARNING --reuse-model") and "LEAKY" in text.splitlines()[0]
    assert "(leaky:" in text and "[LEAKY: --reuse-model]" in text
    assert json.loads(text.strip().splitlines()[-1])["leaky"] is True
    assert json.loads((out / "cv.json").read_text())["protocol"] == "reuse-model (leaky)"


@pytest.mark.parametrize("extra, message", [
    (["--folds", "1"], "folds must be an integer >= 2"),
    (["--subset", "1"], "--subset 1: choose between 2 and 500"),
    (["--model", "nope"], "unknown model 'nope'"),
    (["--stratified", "--folds", "600"], "cannot split 500 images into 600 folds"),
])
def test_cv_bad_input_is_one_line_on_stderr(tmp_path, tiny_mnist_dir, capsys, extra, message):
    _, argv = _cv(tmp_path, tiny_mnist_dir, *extra)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("digitlab cv: error:") and message in err
