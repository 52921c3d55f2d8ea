"""bench/best_accuracy.py --together: all seeds at once, then their ensemble (quick mode, real MNIST)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


BENCH_SCRIPT = "best_accuracy"


@pytest.mark.slow
def test_together_trains_every_seed_beside_the_others_and_ensembles_them(bench, mnist, tmp_path, capsys):
    # A GPU left mostly idle by one run trains all five at once in about one run's time (session 7): the
    # script must then start seed 0 with the others (no solo time claimed) and still ensemble them all.
    data_dir = Path(os.environ["DIGITLAB_DATA_DIR"]) / "mnist"
    rc = bench.main(["-o", str(tmp_path / "best"), "--quick", "--together", "--parallel", "2", "--skip-baseline",
                     "--device", "cpu", "--data-dir", str(data_dir), "--extra", "--threads 1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    figures = json.loads(out.strip().splitlines()[-1])
    runs = figures["runs"]
    assert sorted(runs) == ["seed-0", "seed-1"]
    assert all(r["rc"] == 0 and not r["solo"] for r in runs.values())
    assert figures["single"]["solo"] is False and "(beside the other runs)" in out
    assert figures["ensemble"]["n_members"] == 2
    # Each run's model records the exact command that made it.
    meta = json.loads((tmp_path / "best" / "seed-1" / "model.json").read_text())
    assert "--seed 1" in meta["made_with"]["command"]



def test_fit_epochs_sizes_the_schedule_from_the_shared_epoch_time(bench, monkeypatch):
    import epoch_time

    seen = {}

    def fake_measure(preset, runs, steps, device, data_dir, model_kwargs):
        seen.update(preset=preset, runs=runs)
        return {"epoch_s": 10.0, "ms_per_step": 21.3}

    monkeypatch.setattr(epoch_time, "measure", fake_measure)
    args = bench.parse_args(["-o", "x", "--preset", "deep", "--parallel", "5", "--together", "--fit-epochs", "300"])
    sizing = bench.fit_epochs(args, seeds=5, model_kwargs={})
    # (300 s - 25 s of start-up and saving) / (10 s per epoch + 15% spare) = 23.9: 23 epochs; all 5 share the device.
    assert sizing["epochs"] == 23 and seen == {"preset": "deep", "runs": 5}
    # Never more than the preset's own schedule (deep: 40), never fewer than one epoch.
    args.fit_epochs = 10_000
    assert bench.fit_epochs(args, seeds=5, model_kwargs={})["epochs"] == 40
    args.fit_epochs, args.max_epochs = 10_000, 12
    assert bench.fit_epochs(args, seeds=5, model_kwargs={})["epochs"] == 12
    args.fit_epochs = 5
    assert bench.fit_epochs(args, seeds=5, model_kwargs={})["epochs"] == 1
    # Without --together seed 0 trains alone first, and the other seeds share the device --parallel at a time.
    args = bench.parse_args(["-o", "x", "--preset", "deep", "--parallel", "3", "--fit-epochs", "300"])
    bench.fit_epochs(args, seeds=5, model_kwargs={})
    assert seen["runs"] == 3


@pytest.mark.slow
def test_fit_epochs_trains_the_deep_preset_for_the_epochs_it_sized(bench, mnist, tmp_path, capsys):
    data_dir = Path(os.environ["DIGITLAB_DATA_DIR"]) / "mnist"
    rc = bench.main(["-o", str(tmp_path / "deep"), "--quick", "--preset", "deep", "--together", "--parallel", "2",
                     "--skip-baseline", "--device", "cpu", "--data-dir", str(data_dir), "--extra", "--threads 1",
                     "--fit-epochs", "1000", "--max-epochs", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    figures = json.loads(out.strip().splitlines()[-1])
    sizing = figures["epoch_sizing"]
    assert sizing["runs"] == 2 and sizing["epochs"] == 2 and sizing["epoch_s"] > 0
    for seed in (0, 1):
        run = tmp_path / "deep" / f"seed-{seed}"
        assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2
        meta = json.loads((run / "model.json").read_text())
        # The quick net is `deep`'s ten layers, narrow; the command records the sized epochs.
        assert meta["architecture"]["name"] == "deep" and len(meta["architecture"]["kwargs"]["widths"]) == 10
        assert meta["made_with"]["command"].endswith("--epochs 2 --device cpu --data-dir " + str(tmp_path / "deep" / "quick-data"))
    assert figures["ensemble"]["n_members"] == 2


@pytest.mark.parametrize("mode", [["--quick"], []])
def test_a_bad_preset_is_one_line_and_exit_2(bench, tmp_path, capsys, mode):
    # Checked before anything trains, in quick mode or not (no run folders, no baseline started).
    assert bench.main(["-o", str(tmp_path / "x"), "--preset", "nope", *mode, "--skip-baseline"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "Traceback" not in err
    assert not list((tmp_path / "x").glob("seed-*"))


@pytest.mark.parametrize("flag, value", [("--fit-epochs", "-5"), ("--fit-epochs", "soon"), ("--time-budget", "0"),
                                         ("--time-budget", "nan")])
def test_budgets_must_be_positive_seconds(bench, capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["-o", "x", flag, value])
    assert exc.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
