"""A real two-node Ray cluster: `ray start --head` and a second node that joins it (`ray start
--address`), each with one CPU, both started by this test and always stopped by it. `digitlab cv
--executor ray --address` (a subprocess, as a user would run it) must spread the 4 folds over both
nodes and write the same scores, histories, predictions and plots as `--executor local`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ray_cluster import LocalRayCluster, ray_env
from scale_helpers import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

CV_ARGS = ["cv", "--model", "mlp", "--model-arg", "hidden=128", "--epochs", "1", "--folds", "4", "--threads", "1",
           "--device", "cpu", "--no-download", "--json"]
# Outputs that hold wall-clock times, process ids, node ids or the executor's name.
VOLATILE = {"train_time_s", "fold_train_time_s", "wall_time_s", "pid", "node_id", "executor", "output", "epoch_time",
            "created", "environment"}


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    c = LocalRayCluster(cpus_per_node=1)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _csv_without_volatile(path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in VOLATILE]
    return [[r[i] for i in keep] for r in rows]


def test_cv_on_two_nodes_matches_local(cluster, idx_data_dir, tmp_path):
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    on_ray = run_cli(*CV_ARGS, "--data-dir", str(idx_data_dir), "-o", str(ray_dir), "--executor", "ray",
                     "--address", cluster.address, "--cpus-per-fold", "1", timeout=240, **_auth_env())
    assert on_ray.returncode == 0, on_ray.stderr[-3000:] + cluster.logs()
    local = run_cli(*CV_ARGS, "--data-dir", str(idx_data_dir), "-o", str(local_dir), "--executor", "local",
                    timeout=240)
    assert local.returncode == 0, local.stderr[-3000:]

    summary_ray = json.loads(on_ray.stdout.strip().splitlines()[-1])
    summary_local = json.loads(local.stdout.strip().splitlines()[-1])
    assert summary_ray["executor"] == "ray" and summary_local["executor"] == "local"
    assert summary_ray["scores"] == summary_local["scores"] and 0.5 < summary_ray["mean"] < 1.0

    folds = [json.loads((ray_dir / "folds" / f"fold-0{k}.json").read_text()) for k in range(1, 5)]
    nodes = {f["node_id"] for f in folds}
    assert len(nodes) == 2, f"all folds ran on {nodes}: the second node got no work"
    assert all(f["pid"] for f in folds)

    # Every output file: byte-identical where it holds no timing, equal without the timings otherwise.
    names = sorted(p.relative_to(local_dir) for p in local_dir.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(ray_dir) for p in ray_dir.rglob("*") if p.is_file())
    for name in names:
        a, b = local_dir / name, ray_dir / name
        if name.suffix == ".json":
            assert _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text())), name
        elif name.suffix == ".csv":
            assert _csv_without_volatile(a) == _csv_without_volatile(b), name
        elif name.suffix == ".npy":
            assert np.array_equal(np.load(a), np.load(b)), name
        else:  # plots (PNG), reports
            assert a.read_bytes() == b.read_bytes(), name


def test_unreachable_address_is_one_clear_line(idx_data_dir, tmp_path):
    from ray_cluster import free_port

    out = run_cli(*CV_ARGS, "--data-dir", str(idx_data_dir), "-o", str(tmp_path / "o"), "--executor", "ray",
                  "--address", f"127.0.0.1:{free_port()}", timeout=120, **_auth_env())
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("digitlab cv: error:")]
    assert out.returncode == 2 and len(errors) == 1, out.stderr[-3000:]
    assert "cannot reach the Ray cluster at 127.0.0.1:" in errors[0] and "Traceback" not in out.stderr


def _auth_env() -> dict:
    return {"RAY_AUTH_MODE": ray_env()["RAY_AUTH_MODE"]}
