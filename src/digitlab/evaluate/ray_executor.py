"""RayExecutor: each cross-validation fold is a Ray task, on this machine or on a cluster.

The images go into Ray's object store once (`ray.put`) and every task receives the same reference;
Ray hands a numpy array stored there to each worker on a node without copying it, so four folds do
not mean four copies of the data on the wire. A task is `run_fold` (the very function the local
executor calls) in a worker process with `cpus_per_fold` torch threads, so for the same seeds and
thread count its scores and histories are bit-identical to the local executor's.

Faults: a task whose worker process dies (killed, out of memory, node lost) is retried up to
`max_retries` times by Ray; the fold starts again from scratch with the same seed, so the result is
the one it would have been. A Python exception inside a fold (a bad setting) is not retried: it is
re-raised here as the original digitlab error.

Ray is the optional `ray` extra; it is imported inside the methods.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch

from digitlab.errors import ConfigError, DigitlabError, require
from digitlab.evaluate.crossval import run_fold
from digitlab.models.registry import build_model
from digitlab.train.config import TrainConfig
from digitlab.train.loop import fit


def _fold_task(task, x, y, threads: int):
    """Runs inside a Ray worker. x, y arrive as numpy arrays (Ray resolves the object refs)."""
    import ray  # lazy: the optional [ray] extra

    torch.set_num_threads(threads)
    result = run_fold(task, x, y)
    return replace(result, node_id=ray.get_runtime_context().get_node_id(), pid=os.getpid())


def _warm_task(model_name: str, threads: int, hold_s: float) -> int:
    """Pay a worker's one-time costs (importing torch and digitlab, torch's lazy first-step imports)."""
    torch.set_num_threads(threads)
    fit(build_model(model_name), np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.int64),
        TrainConfig.from_flat(epochs=1, batch_size=8, device="cpu", threads=threads), verbose=False)
    time.sleep(hold_s)  # keep this worker busy so that the other warm-up tasks land on other workers
    return os.getpid()


class RayExecutor:
    """Runs the folds as Ray tasks; `map` has the same contract as LocalExecutor.map.

    address: an existing cluster ("HOST:PORT" of its head, or "auto"); None starts a local Ray
        instance in this process with `num_cpus` CPUs (default: all cores).
    cpus_per_fold: CPUs each fold reserves and the torch threads it uses (>= 1).
    gpus_per_fold: GPUs each fold reserves (may be fractional, e.g. 0.5 to share one GPU by two folds).
    max_retries: how often a fold whose worker died is started again.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_fold: int = 1, gpus_per_fold: float = 0,
                 max_retries: int = 3, num_cpus: int | None = None):
        require("ray", "ray")  # fail before any data is loaded, naming the extra to install
        if cpus_per_fold < 1 or int(cpus_per_fold) != cpus_per_fold:
            raise ConfigError(f"--cpus-per-fold must be a whole number >= 1, got {cpus_per_fold}")
        if gpus_per_fold < 0:
            raise ConfigError(f"--gpus-per-fold must be >= 0, got {gpus_per_fold}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if num_cpus is not None and num_cpus < 1:
            raise ConfigError(f"the local Ray instance needs >= 1 CPU, got {num_cpus}")
        if address is not None and num_cpus is not None:
            raise ConfigError("num_cpus sizes a local Ray instance; an existing cluster (--address) has its own")
        self.address, self.cpus_per_fold, self.gpus_per_fold = address, int(cpus_per_fold), gpus_per_fold
        self.max_retries, self.num_cpus = max_retries, num_cpus
        self.init_time_s: float | None = None  # seconds spent starting/connecting, reported apart
        self._started_ray = False
        self._data = None  # (x, y, x_ref, y_ref) of the last map: the arrays stay in the store

    # --- session -------------------------------------------------------------------------------

    def start(self) -> "RayExecutor":
        """Connect to the cluster (or start a local instance) unless this process already did."""
        ray = require("ray", "ray")
        if ray.is_initialized():
            return self
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        started = time.perf_counter()
        if self.address is not None:
            _check_reachable(self.address)
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # the CLI prints its own lines
        try:
            if self.address is not None:
                ray.init(address=self.address, **quiet)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot start or reach {where} ({first}): start one with "
                              "`ray start --head --port 6379` and pass --address HOST:6379, or omit --address") from None
        self._started_ray = True
        self.init_time_s = time.perf_counter() - started
        return self

    def shutdown(self) -> None:
        """Disconnect (and stop the local instance) if this executor started it."""
        if self._started_ray:
            import ray  # lazy: the optional [ray] extra

            ray.shutdown()
            self._started_ray = False
        self._data = None

    def __enter__(self) -> "RayExecutor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def warm_up(self, model_name: str = "mlp", hold_s: float = 1.0) -> float:
        """Start one worker per fold slot and pay its one-time costs; returns the seconds it took.

        Optional: without it the first fold on each worker pays them. Benchmarks call it so that
        they can report this cost apart from the cross-validation time.
        """
        ray = require("ray", "ray")
        self.start()
        started = time.perf_counter()
        slots = max(1, int(self.cluster_cpus() // self.cpus_per_fold))
        remote = ray.remote(_warm_task).options(num_cpus=self.cpus_per_fold, num_gpus=self.gpus_per_fold)
        ray.get([remote.remote(model_name, self.cpus_per_fold, hold_s) for _ in range(slots)])
        return time.perf_counter() - started - hold_s

    def cluster_cpus(self) -> float:
        import ray  # lazy: the optional [ray] extra

        return float(ray.cluster_resources().get("CPU", 0))

    # --- work ----------------------------------------------------------------------------------

    def map(self, tasks: Sequence, x, y, on_result: Callable | None = None) -> list:
        """Run every FoldTask as a Ray task; return the FoldResults in task order.

        on_result(FoldResult) is called in this process as each fold finishes (in completion order).
        x and y are put into the object store once; later calls with the same array objects (a sweep's
        trials) reuse them, so do not modify them in place between calls.
        """
        ray = require("ray", "ray")
        self.start()
        if not tasks:
            return []
        self._check_fits()
        if self._data is None or self._data[0] is not x or self._data[1] is not y:
            # Once per dataset, not per call: a sweep's trials all reuse the same refs.
            self._data = (x, y, ray.put(np.ascontiguousarray(x)), ray.put(np.ascontiguousarray(y)))
        x_ref, y_ref = self._data[2], self._data[3]
        remote = ray.remote(_fold_task).options(
            num_cpus=self.cpus_per_fold, num_gpus=self.gpus_per_fold, max_retries=self.max_retries,
            retry_exceptions=False, name="digitlab-fold",
        )
        pending = {remote.remote(task, x_ref, y_ref, self.cpus_per_fold): task.fold for task in tasks}
        results = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                fold = pending.pop(ready[0])
                results[fold] = self._get(ray, ready[0], fold)
                if on_result is not None:
                    on_result(results[fold])
        finally:
            for ref in pending:  # an error or Ctrl-C: do not leave folds running on the cluster
                ray.cancel(ref, force=True)
        return [results[task.fold] for task in tasks]

    def _get(self, ray, ref, fold: int):
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, DigitlabError):
                raise cause from None
            raise DigitlabError(f"fold {fold + 1} failed on Ray: {_last_line(exc)}") from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError) as exc:
            raise DigitlabError(f"fold {fold + 1} failed: its Ray worker died {self.max_retries + 1} times "
                                f"({_last_line(exc)}); check the workers' memory (dmesg) and logs") from None

    def _check_fits(self) -> None:
        # A task that asks for more than any node has would wait forever: say so up front.
        import ray  # lazy: the optional [ray] extra

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if not any(r.get("CPU", 0) >= self.cpus_per_fold and r.get("GPU", 0) >= self.gpus_per_fold for r in nodes):
            biggest = max((r.get("CPU", 0) for r in nodes), default=0)
            gpus = max((r.get("GPU", 0) for r in nodes), default=0)
            raise ConfigError(f"no Ray node has {self.cpus_per_fold} CPUs and {self.gpus_per_fold} GPUs for a fold "
                              f"(largest: {biggest:g} CPUs, {gpus:g} GPUs): lower --cpus-per-fold/--gpus-per-fold")


def _last_line(exc: BaseException) -> str:
    # Ray's error text ends with the original exception's own line.
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a wrong HOST:PORT; ray.init would retry for minutes before giving up."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # "auto" and other forms are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start its head with "
                          "`ray start --head --port PORT` and pass --address HOST:PORT") from None
