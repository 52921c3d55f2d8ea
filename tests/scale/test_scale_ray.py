"""RayExecutor on a local Ray instance (started once for this module): identical results to the local
executor, the data put in the object store once, errors re-raised as digitlab errors, and a fold whose
worker process is SIGKILLed mid-training retried to the same scores."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from digitlab.errors import ConfigError, MissingExtraError
from digitlab.evaluate.crossval import FoldTask, LocalExecutor, cross_validate, make_splits
from digitlab.train.config import TrainConfig

pytestmark = pytest.mark.ray
CONFIG = TrainConfig.from_flat(epochs=1, batch_size=32, threads=1, device="cpu", seed=7)


def test_missing_ray_names_the_extra(monkeypatch, tmp_path, capsys, idx_data_dir):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    from digitlab.evaluate.ray_executor import RayExecutor

    with pytest.raises(MissingExtraError, match=r'pip install "digitlab\[ray\]"'):
        RayExecutor()
    from digitlab.cli.main import main

    code = main(["cv", "--executor", "ray", "--data-dir", str(idx_data_dir), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "install the 'ray' extra" in err[0], err


def test_local_executor_rejects_ray_flags(tmp_path, capsys, idx_data_dir):
    from digitlab.cli.main import main

    code = main(["cv", "--cpus-per-fold", "2", "--data-dir", str(idx_data_dir), "-o", str(tmp_path / "o")])
    assert code == 2 and "apply to --executor ray" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    from digitlab.evaluate.ray_executor import RayExecutor

    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a private instance; CI has no ~/.ray token
    executor = RayExecutor(num_cpus=2, max_retries=2)
    try:
        with executor:
            yield executor
    finally:
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def _tasks(y, folds=3, config=CONFIG, **kw):
    splits = make_splits(len(y), folds, seed=1)
    return [FoldTask(k, tr, te, "mlp", {"hidden": 64, "dropout": 0.2}, config.replace(seed=config.seed + k),
                     record_weights=True, **kw) for k, (tr, te) in enumerate(splits)]


def _same(a, b) -> None:
    """Fold results from two executors: equal scores, histories, weights and predictions."""
    assert (a.fold, a.accuracy, a.loss, a.n_train, a.n_test) == (b.fold, b.accuracy, b.loss, b.n_train, b.n_test)
    assert {k: v for k, v in a.history.items() if k != "epoch_time"} == \
           {k: v for k, v in b.history.items() if k != "epoch_time"}
    assert a.extra["weights_final"] == b.extra["weights_final"]
    assert np.array_equal(a.extra["test_proba"], b.extra["test_proba"])


def test_ray_results_are_identical_to_local(ray_executor, digits):
    x, y = digits
    tasks = _tasks(y)
    local = LocalExecutor().map(tasks, x, y)
    seen = []
    remote = ray_executor.map(tasks, x, y, on_result=lambda r: seen.append(r.fold))
    assert sorted(seen) == [0, 1, 2] and [r.fold for r in remote] == [0, 1, 2]
    for a, b in zip(local, remote):
        _same(a, b)
        assert b.node_id and len(b.node_id) == 56 and b.pid != os.getpid()
    assert ray_executor.init_time_s is not None


def test_cross_validate_with_ray_matches_local(ray_executor, digits):
    x, y = digits
    local = cross_validate("mlp", x, y, folds=3, config=CONFIG, model_kwargs={"hidden": 32})
    remote = cross_validate("mlp", x, y, folds=3, config=CONFIG, model_kwargs={"hidden": 32}, executor=ray_executor)
    assert remote.executor == "ray" and np.array_equal(local.scores, remote.scores)
    assert np.array_equal(local.oof_proba(), remote.oof_proba())


def test_data_goes_into_the_object_store_once(ray_executor, digits, monkeypatch):
    import ray

    x, y = digits
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(getattr(value, "shape", None)) or real_put(value, **kw))
    ray_executor.map(_tasks(y, folds=2), x, y)
    assert puts == [x.shape, y.shape]  # one put per array, whatever the number of folds
    ray_executor.map(_tasks(y, folds=2, config=CONFIG.replace(lr=0.01)), x, y)
    assert len(puts) == 2  # a second CV of the same arrays (a sweep's next trial) reuses them


def test_a_fold_error_comes_back_as_the_digitlab_error(ray_executor, digits):
    x, y = digits
    bad = [FoldTask(0, np.arange(10), np.arange(10, 20), "mlp", {"no_such_option": 1}, CONFIG)]
    with pytest.raises(ConfigError, match="no option no_such_option"):
        ray_executor.map(bad, x, y)


def test_more_cpus_per_fold_than_any_node_is_refused(ray_executor, digits):
    from digitlab.evaluate.ray_executor import RayExecutor

    x, y = digits
    with pytest.raises(ConfigError, match="no Ray node has 64 CPUs"):
        RayExecutor(cpus_per_fold=64).map(_tasks(y, folds=2), x, y)  # joins the module's Ray instance
    with pytest.raises(ConfigError, match="whole number"):
        RayExecutor(cpus_per_fold=0)


def _fold_workers() -> list:
    """This test process's own Ray worker processes that are running a fold right now."""
    import psutil

    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if proc.cmdline() and proc.cmdline()[0].startswith("ray::digitlab-fold"):
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


def test_a_killed_worker_is_retried_to_the_same_scores(ray_executor, digits):
    x, y = digits
    # Longer folds (6 epochs) so that the killer finds one training.
    tasks = _tasks(y, folds=3, config=CONFIG.replace(epochs=6))
    local = LocalExecutor().map(tasks, x, y)
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for pid in _fold_workers():  # the title is set when the fold starts, reset when it ends
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    continue
                break
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    remote = ray_executor.map(tasks, x, y)
    thread.join(timeout=5)
    assert killed, "no fold worker was found to kill"
    assert killed[0] not in {r.pid for r in remote}, "the killed worker cannot have delivered a result"
    for a, b in zip(local, remote):
        _same(a, b)


def test_sweep_on_ray_matches_local(ray_executor, digits):
    from digitlab.workflows.sweep import run_sweep

    x, y = digits[0][:600], digits[1][:600]
    params = {"lr": [1e-3, 3e-3], "model.hidden": [16, 32]}
    local = run_sweep("mlp", x, y, params=params, base_config=CONFIG, folds=2)
    remote = run_sweep("mlp", x, y, params=params, base_config=CONFIG, folds=2, executor=ray_executor)
    assert remote.executor == "ray"
    key = lambda t: tuple(t["params"].values())  # noqa: E731
    assert [(key(t), t["scores"]) for t in sorted(local.trials, key=key)] == \
           [(key(t), t["scores"]) for t in sorted(remote.trials, key=key)]
