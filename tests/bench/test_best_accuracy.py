"""bench/best_accuracy.py --together: all seeds at once, then their ensemble (quick mode, real MNIST)."""

from __future__ import annotations

import json
import os
from pathlib import Path


BENCH_SCRIPT = "best_accuracy"


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

