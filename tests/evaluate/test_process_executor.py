"""Folds in worker processes: same scores as in-process, reported in fold order, CLI choice of executor."""

from __future__ import annotations

import os

import numpy as np
import pytest

from digitlab.cli.main import build_parser
from digitlab.errors import ConfigError
from digitlab.evaluate.crossval import LocalExecutor, cross_validate
from digitlab.evaluate.process_executor import ProcessExecutor

SMALL_MLP = {"hidden": 32}


def test_processes_give_the_local_scores_in_fold_order(tiny_digits, fast_config):
    x, y = tiny_digits
    reported = []
    local = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP, executor=LocalExecutor())
    parallel = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP,
                              executor=ProcessExecutor(workers=2), on_result=lambda r: reported.append(r.fold))
    assert parallel.executor == "processes"
    assert reported == [0, 1, 2]  # in fold order, whichever worker finished first
    # Each fold is the same task (fresh model, seed + fold, one thread both times): the same numbers.
    np.testing.assert_allclose(parallel.scores, local.scores, atol=1e-6)
    for a, b in zip(parallel.folds, local.folds):
        np.testing.assert_allclose(a.extra["test_proba"], b.extra["test_proba"], atol=1e-5)
    assert {f.pid for f in parallel.folds} - {os.getpid()}  # the folds ran in other processes


def test_a_partial_last_round_runs_in_this_process(tiny_digits, fast_config, monkeypatch):
    from digitlab.evaluate import process_executor as pe

    monkeypatch.setattr(pe, "physical_cores", lambda: 2)
    x, y = tiny_digits
    result = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP,
                            executor=ProcessExecutor())
    pids = [f.pid for f in result.folds]
    assert pids[2] == os.getpid() and os.getpid() not in pids[:2]  # folds 0-1 side by side, fold 2 here


def test_the_plan_fits_workers_to_folds_and_cores(monkeypatch):
    from digitlab.evaluate import process_executor as pe

    monkeypatch.setattr(pe, "physical_cores", lambda: 4)
    assert ProcessExecutor().plan(5)[:2] == (4, 1)
    assert ProcessExecutor().plan(2)[:2] == (2, 2)  # two folds on four cores: two threads each
    assert ProcessExecutor(workers=3).plan(2)[:2] == (2, 2)  # never more workers than folds
    workers, threads, method = ProcessExecutor(workers=2, threads_per_worker=2).plan(4)
    assert (workers, threads) == (2, 2) and method == "spawn"  # OpenMP cannot run in a forked child


def test_processes_refuse_a_gpu_config(tiny_digits, fast_config):
    x, y = tiny_digits
    with pytest.raises(ConfigError, match="--executor local"):
        cross_validate("mlp", x, y, folds=2, config=fast_config.replace(device="cuda"), model_kwargs=SMALL_MLP,
                       executor=ProcessExecutor())


@pytest.mark.parametrize("argv, expected", [
    (["cv"], "processes"),
    (["cv", "--executor", "local"], "local"),
    (["cv", "--workers", "2"], "processes"),
    (["cv", "--reuse-model"], "local"),
    (["cv", "--device", "cpu", "--executor", "processes"], "processes"),
])
def test_cli_executor_choice(argv, expected, monkeypatch):
    from digitlab.evaluate import process_executor as pe
    from digitlab.cli.cv import choose_auto, make_executor

    monkeypatch.setattr(pe, "physical_cores", lambda: 2)
    args = build_parser().parse_args([*argv, "--device", "cpu"] if "--device" not in argv else argv)
    name = choose_auto(args) if args.executor == "auto" else args.executor
    assert name == expected
    if not args.reuse_model:
        assert make_executor(args).name == expected


def test_auto_is_local_on_one_core(monkeypatch):
    from digitlab.evaluate import process_executor as pe
    from digitlab.cli.cv import make_executor

    monkeypatch.setattr(pe, "physical_cores", lambda: 1)
    assert make_executor(build_parser().parse_args(["cv", "--device", "cpu"])).name == "local"


@pytest.mark.parametrize("argv, message", [
    (["cv", "--executor", "local", "--workers", "2"], "--workers applies to --executor processes"),
    (["cv", "--executor", "processes", "--workers", "0"], "--workers must be >= 1"),
])
def test_cli_executor_flag_errors(argv, message):
    from digitlab.cli.cv import make_executor

    with pytest.raises(ConfigError, match=message):
        make_executor(build_parser().parse_args([*argv, "--device", "cpu"]))


def test_the_parent_preloads_torch_dynamo_only_for_folds_that_need_it(monkeypatch):
    """mlp folds train through the fused step, which never imports torch._dynamo: no second of preload."""
    from digitlab.evaluate import process_executor as pe
    from digitlab.evaluate.crossval import FoldTask
    from digitlab.train.config import TrainConfig

    import torch

    built = []
    monkeypatch.setattr(torch.optim, "SGD", lambda *a, **k: built.append(1))
    idx = np.arange(4)

    def tasks(model, **config):
        return [FoldTask(f, idx, idx, model, {}, TrainConfig.from_flat(seed=f, **config)) for f in range(3)]

    pe._preload_for_workers(tasks("mlp"))
    assert built == []
    pe._preload_for_workers(tasks("mlp", optimizer="sgd"))
    pe._preload_for_workers(tasks("fast"))
    assert built == [1, 1]
    pe._preload_for_workers(tasks("mlp", augment="affine", augment_options={"rotate": 5}))  # a dict in the config
    assert built == [1, 1, 1]
