"""bench/step_profile.py: per-step figures from a real (tiny) training run, and its one-line errors."""

from __future__ import annotations

import json

import pytest


BENCH_SCRIPT = "step_profile"


def test_profiles_the_fast_step_on_cpu(bench, mnist_like, capsys):
    data = mnist_like(3 * 128 + 56, 50)
    assert bench.main(["--data-dir", str(data), "--steps", "3", "--threads", "1", "--top", "40"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["steps"] == 3 and figures["batch_size"] == 128 and figures["device"] == "cpu"
    assert figures["wall_ms_per_step"] > 0
    # A training step of a 3-conv BN net is dozens of operators: forward, backward and the optimizer.
    assert figures["aten_ops_per_step"] > 30
    ops = {name for name, _, _ in figures["top_ops_by_cpu_time"]}
    assert {"aten::convolution_backward", "aten::native_batch_norm"} <= ops and len(figures["top_ops_by_cpu_time"]) <= 40
    # No device on a CPU run: no kernels, no busy fraction (and no made-up one).
    assert figures["kernels_per_step"] == 0 and figures["busy_fraction"] is None
    assert "wall time per step" in out and "device kernels" not in out


@pytest.mark.parametrize("argv, message", [
    (["--preset", "fast+compile:fastest"], "unknown compile mode 'fastest'"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--steps", "5"], "need 640 training images, the data has 440: ask for at most 3"),
])
def test_bad_arguments_are_one_line_and_exit_2(bench, mnist_like, capsys, argv, message):
    data = mnist_like(3 * 128 + 56, 50)
    assert bench.main(["--data-dir", str(data), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_bad_top_is_argparse_s_one_line_error(bench, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--top", "-1"])
    assert exit_info.value.code == 2
    assert "--top: must be >= 1, got -1" in capsys.readouterr().err
