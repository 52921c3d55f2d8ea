"""`digitlab train`, `evaluate` and `models` end to end, and their errors (one line, non-zero, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


# Each test starts `python -m digitlab` (torch import, training): 6-20 s apiece on a laptop CPU.
pytestmark = pytest.mark.slow


def run(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True,
                          timeout=300, env=full_env)


def test_train_then_evaluate_end_to_end(tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    result = run("train", "--model", "mlp", "--model-arg", "hidden=32", "--epochs", "3", "--batch-size", "32",
                 "--validate-on-test", "--data-dir", str(tiny_data_dir), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert "Test loss:" in result.stdout
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["epochs_run"] == 3 and metrics["test_accuracy"] > 0.8
    for name in ("model.safetensors", "model.json", "history.csv", "learning_curves.png", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    meta = json.loads((out / "model.json").read_text())
    assert meta["architecture"]["kwargs"]["hidden"] == 32
    assert meta["train_config"]["epochs"] == 3 and meta["seed"] == 0
    assert len(meta["history"]["val_accuracy"]) == 3

    evaluated = run("evaluate", str(out), "--data-dir", str(tiny_data_dir), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert set(scores["per_class_accuracy"]) == {str(i) for i in range(10)}


def test_models_lists_and_summarises():
    listing = run("models")
    assert listing.returncode == 0 and "mlp" in listing.stdout and "407,050" in listing.stdout
    summary = run("models", "mlp")
    assert "Total params: 407,050" in summary.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data-dir", "/nonexistent/mnist", "--epochs", "1"], "/nonexistent/mnist"),
        (["train", "--model", "nope", "--epochs", "1"], "unknown model 'nope'"),
        (["train", "--epochs", "0"], "epochs must be >= 1"),
        (["train", "--model-arg", "oops"], "KEY=VALUE"),
        (["evaluate", "/nonexistent/run"], "model not found"),
        (["evaluate"], "give a run folder"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path):
    result = run(*args, env={"DIGITLAB_DATA_DIR": str(tmp_path), "DIGITLAB_CACHE_DIR": str(tmp_path / "c")})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


def test_corrupt_model_file_is_one_line(tmp_path, tiny_data_dir):
    from digitlab.models.registry import build_model
    from digitlab.models.storage import save_model

    save_model(build_model("mlp", hidden=8), tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"<html>not weights</html>")
    result = run("evaluate", str(tmp_path / "run"), "--data-dir", str(tiny_data_dir))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "corrupt" in result.stderr
