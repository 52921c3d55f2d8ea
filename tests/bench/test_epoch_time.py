"""bench/epoch_time.py: runs sharing a device, timed together after a barrier; and its one-line errors."""

from __future__ import annotations

import json

import pytest

BENCH_SCRIPT = "epoch_time"


def test_two_runs_at_once_give_a_per_step_and_per_epoch_time(bench, mnist_like, capsys):
    data = mnist_like(3 * 128, 20)
    rc = bench.main(["--preset", "fast", "--runs", "2", "--steps", "3", "--device", "cpu", "--data-dir", str(data),
                     "--model-kwargs", '{"widths": [4, 8, 8]}'])
    out = capsys.readouterr().out
    assert rc == 0, out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["runs"] == 2 and figures["steps"] == 3 and figures["batch_size"] == 128
    assert figures["device"] == "cpu" and figures["ms_per_step"] > 0
    # An epoch is 60,000 images: 469 steps of 128 at the slowest run's pace; both runs count in the total.
    assert figures["epoch_s"] == pytest.approx(figures["ms_per_step"] * 469 / 1000)
    assert figures["images_per_s_total"] == pytest.approx(2 * figures["images_per_s_each"])
    assert "2 run(s) at once on cpu" in out


@pytest.mark.parametrize("argv,message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--model-kwargs", "[1, 2]"], "--model-kwargs must be a JSON object"),
    # A worker's failure (here a bad architecture) reaches the parent as one line, not a hang at the barrier.
    (["--runs", "2", "--model-kwargs", '{"widths": [4, 8]}'], "epoch timing of preset 'fast' failed: ConfigError"),
])
def test_bad_arguments_are_one_line_and_exit_2(bench, mnist_like, capsys, argv, message):
    data = mnist_like(2 * 128, 20)
    assert bench.main(["--preset", "fast", "--steps", "2", "--device", "cpu", "--data-dir", str(data), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_runs_must_be_at_least_one(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--runs", "0"])
    assert exc.value.code == 2 and "--runs: must be >= 1, got 0" in capsys.readouterr().err
