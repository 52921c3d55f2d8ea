"""Folds in parallel worker processes on this machine: `digitlab cv --executor processes`.

Why processes and not more threads: a fold of the article's mlp is thousands of small steps (a few
GEMMs of 128 rows and a dozen elementwise ops each). torch splits every op across its threads and
joins them again, and on two cores half of each step is that fork/join and the ops too small to
split. Two folds side by side, one thread each, keep both cores busy all the time: on a 2-core
machine the 5-fold CV of the mlp (`digitlab cv --model mlp --folds 5 --epochs 5`) takes 8.1 s this
way against 9.6 s for the folds one after another (16 s against 21 s before the fused step's native
kernels took most of the small ops out).

Each fold is the same task as with the local executor (a fresh model seeded with seed + fold), so
the scores match it up to float rounding (one thread sums in another order than two).

On Linux the workers are forked when they run one thread each: they share the parent's copy of
the images and start at once. libgomp (OpenMP) cannot run a parallel region in a forked child, so
workers with more than one thread are spawned instead (they re-import torch and get the images
pickled, about two seconds more).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Callable, Sequence

import torch

from digitlab.errors import ConfigError
from digitlab.evaluate.crossval import LocalExecutor, run_fold
from digitlab.models.registry import build_model
from digitlab.train.device import prepare_training_process, resolve_device
from digitlab.train.fused_mlp import unsupported_reason

_POOL_X = None  # the CV pool's images and labels, set once per worker process
_POOL_Y = None


def physical_cores() -> int:
    """torch's default thread count is one per physical core; os.cpu_count() counts hyper-threads."""
    return max(1, torch.get_num_threads())


def _init_worker(x, y, threads: int, parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    global _POOL_X, _POOL_Y
    _POOL_X, _POOL_Y = x, y
    prepare_training_process()  # a spawned worker starts bare; a forked one has it already
    torch.set_num_threads(threads)


def _exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Leave when the parent process is gone.

    A parent killed outright (kill -9, the OOM killer) cannot tell its pool to stop. Its workers
    would then wait for ever on the pool's pipe, each holding its copy of the data (350 MB for the
    mlp's CV). A daemon thread checks the parent's pid twice a second; the fold being trained is
    lost either way, since only the parent saves folds.
    """
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="digitlab-exit-with-parent", daemon=True).start()


def _run_in_worker(task):
    return run_fold(task, _POOL_X, _POOL_Y)


class ProcessExecutor:
    """Runs the folds in `workers` processes (default: one per physical core, at most one per fold)."""

    name = "processes"

    def __init__(self, workers: int | None = None, threads_per_worker: int | None = None):
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        if threads_per_worker is not None and threads_per_worker < 1:
            raise ConfigError(f"threads per worker must be >= 1, got {threads_per_worker}")
        self.workers, self.threads_per_worker = workers, threads_per_worker

    def plan(self, n_tasks: int) -> tuple[int, int, str]:
        """(workers, threads per worker, start method) for `n_tasks` folds on this machine."""
        cores = physical_cores()
        workers = max(1, min(self.workers or cores, n_tasks))
        threads = self.threads_per_worker or max(1, cores // workers)
        method = "fork" if sys.platform.startswith("linux") and threads == 1 else "spawn"
        return workers, threads, method

    def map(self, tasks: Sequence, x, y, on_result: Callable | None = None) -> list:
        for task in tasks:
            if task.config.runtime.device not in ("auto", "cpu"):
                raise ConfigError(f"--executor processes runs folds on the CPU, but the config asks for device "
                                  f"{task.config.runtime.device!r}: use --executor local for a GPU")
        workers, threads, method = self.plan(len(tasks))
        # Folds are dealt in rounds of `workers`. A last, partial round would leave cores idle, so when
        # the workers run one thread each, those folds run afterwards in this process on all cores
        # (5 folds on 2 cores: 2 rounds of 2 side by side, then 1 fold on both cores).
        in_pool = len(tasks) - len(tasks) % workers if threads == 1 and len(tasks) > workers else len(tasks)
        results = self._run_pool(tasks[:in_pool], x, y, workers, threads, method, on_result)

        for task in tasks[in_pool:]:
            result = run_fold(task, x, y)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return sorted(results, key=lambda r: r.fold)

    @staticmethod
    def _run_pool(tasks, x, y, workers: int, threads: int, method: str, on_result) -> list:
        if not tasks:
            return []
        context = multiprocessing.get_context(method)
        if method == "fork":
            _preload_for_workers(tasks)
        results = []
        # Each worker pins its own thread count; the folds' configs must not override it.
        tasks = [_with_threads(t, threads) for t in tasks]
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(x, y, threads, os.getpid())) as pool:
            futures = [pool.submit(_run_in_worker, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    result = future.result()
                    if on_result is not None:
                        on_result(result)
                    results.append(result)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return results


def _preload_for_workers(tasks) -> None:
    """Forked workers inherit this process's imports. The first torch optimizer step of a process
    imports torch._dynamo (about a second): pay that once here rather than once in every worker.
    Folds of the article's mlp train through the fused step, which never imports it: then skip it."""
    # repr, not the config itself: augmentation options are a dict, which does not hash.
    kinds = {(t.model_name, repr(sorted(t.model_kwargs.items())), repr(t.config.replace(seed=0))): t for t in tasks}
    if all(_trains_fused(task) for task in kinds.values()):
        return
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _trains_fused(task) -> bool:
    config = task.config
    model = build_model(task.model_name, **task.model_kwargs)
    return unsupported_reason(model, config, torch.device("cpu"), augmenting=config.augmentation.name != "none",
                              distilling=config.regularisation.teacher is not None) is None


def _with_threads(task, threads: int):
    return replace(task, config=task.config.replace(threads=threads, device="cpu"))



def auto_executor(device: str = "auto"):
    """What `--executor auto` runs: worker processes when the folds train on a CPU with more than one
    core; otherwise (a GPU: one device for all folds; a single core) the folds one after another here."""
    if resolve_device(device).type == "cpu" and physical_cores() > 1:
        return ProcessExecutor()
    return LocalExecutor()
