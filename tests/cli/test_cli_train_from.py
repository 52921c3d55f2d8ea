"""`digitlab train --from RUN | --pretrained`: fine-tuning keeps the saved architecture and records its start."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_from_a_run_keeps_its_architecture_and_records_its_weights(tiny_data_dir, tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    first = run("train", "--model", "mlp", "--model-arg", "hidden=32", "--epochs", "1", "--threads", "1",
                "--data-dir", str(tiny_data_dir), "-o", str(base))
    assert first.returncode == 0, first.stderr
    second = run("train", "--from", str(base), "--epochs", "1", "--optimizer", "sgd", "--lr", "0.01",
                 "--synthetic-fonts", "30", "--threads", "1", "--data-dir", str(tiny_data_dir), "-o", str(tuned))
    assert second.returncode == 0, second.stderr
    base_meta = json.loads((base / "model.json").read_text())
    meta = json.loads((tuned / "model.json").read_text())
    assert meta["architecture"] == base_meta["architecture"]
    assert meta["started_from"]["spec"] == str(base)
    assert meta["started_from"]["weights_sha256"] == base_meta["weights_sha256"]
    assert meta["weights_sha256"] != base_meta["weights_sha256"]  # it trained
    assert meta["train_config"]["augmentation"]["synthetic_fonts"] == 30


def test_blend_start_ends_halfway_between_the_start_and_the_fine_tuned_weights(tiny_data_dir, tmp_path):
    from safetensors.torch import load_file

    base = tmp_path / "base"
    common = ("--epochs", "1", "--optimizer", "sgd", "--lr", "0.05", "--threads", "1", "--data-dir", str(tiny_data_dir))
    assert run("train", "--model", "mlp", "--model-arg", "hidden=32", *common, "-o", str(base)).returncode == 0
    for name, extra in (("tuned", ()), ("blended", ("--blend-start", "0.5"))):
        result = run("train", "--from", str(base), *common, *extra, "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    start, tuned, blended = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("base", "tuned", "blended"))
    for name, weights in blended.items():
        if weights.is_floating_point():
            assert weights.allclose((start[name] + tuned[name]) / 2, atol=1e-6), name
    assert not blended["0.weight" if "0.weight" in blended else next(iter(blended))].equal(
        tuned["0.weight" if "0.weight" in tuned else next(iter(tuned))])


@pytest.mark.parametrize("args,message", [
    (["--from", "no/such/run"], "--from:"),
    (["--pretrained", "--model", "mlp"], "drop --model"),
    (["--pretrained", "--from", "runs/x"], "choose one"),
    (["--preset", "real", "--synthetic-fonts", "-5"], "synthetic fonts"),
    (["--preset", "real"], "--from RUN or --pretrained"),
    (["--pretrained", "--blend-start", "1"], "blend-start"),
])
def test_bad_starts_are_one_line_errors(args, message, tiny_data_dir, tmp_path):
    result = run("train", *args, "--data-dir", str(tiny_data_dir), "-o", str(tmp_path / "out"))
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "model.json").exists()
