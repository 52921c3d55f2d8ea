"""Seconds per training epoch of a preset when N runs share one device: for sizing GPU runs to a budget.

Why: a GPU booked for a fixed time holds one ensemble's training, and a one-cycle schedule needs its epoch
count before it starts (stopping early leaves the learning rate high). On an H200, 4 `best` runs at
once each took as long as one alone, so the time per epoch depends on how many share the
device, and only a measurement with all N running says it.

How: N worker processes (spawned: a CUDA context each, as N `digitlab train` runs have) each train
the preset through `fit` on a slice of MNIST: an untimed warm-up (cuDNN autotuning, allocator growth),
then all wait at a barrier, then time `--steps` steps together. The slowest worker's time per step
times the steps in a 60,000-image epoch is the answer. bench/best_accuracy.py --fit-epochs uses it.

    python3 bench/epoch_time.py --preset deep --runs 5 --device cuda --data-dir .carry/mnist
    .venv/bin/python bench/epoch_time.py --preset fast --runs 2 --steps 20 --data-dir ../shared/data/mnist

A sizing tool, not a goal check: no accuracy (it trains on a slice, briefly). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import positive_int, setup_lines, with_one_line_errors  # noqa: E402

TRAIN_IMAGES = 60_000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="best")
    p.add_argument("--runs", type=positive_int, default=1, help="runs sharing the device (default 1)")
    p.add_argument("--steps", type=positive_int, default=60, help="steps timed in each run (default 60)")
    p.add_argument("--device", default="auto", help="auto (default), cuda or cpu")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: digitlab's lookup)")
    p.add_argument("--model-kwargs", default="{}", help="JSON architecture arguments over the preset's")
    return p.parse_args(argv)


def _worker(rank, preset_name, model_kwargs, device_name, steps, data_dir, threads, barrier, results):
    """One run: warm up, wait for the others, time `steps` steps of `fit`. Puts (rank, seconds or error)."""
    try:
        import torch

        from digitlab.data.dataset import load_dataset
        from digitlab.models.registry import build_model
        from digitlab.train.config import TrainConfig
        from digitlab.train.loop import fit
        from digitlab.train.presets import get_preset

        preset = get_preset(preset_name)
        # One epoch over the slice; a short warm-up so that the schedule is valid whatever the preset's.
        config = TrainConfig.from_flat(**{**preset["config"], "epochs": 1, "warmup_epochs": 0.2, "clean_epochs": 0,
                                          "device": device_name, "threads": threads, "seed": rank})
        data = load_dataset("mnist", data_dir=data_dir, download=False)
        n = min(len(data.x_train), steps * config.batch_size)
        x, y = data.x_train[:n], data.y_train[:n]
        kwargs = {**preset.get("model_kwargs", {}), **model_kwargs}
        warm = max(1, min(n, 10 * config.batch_size))
        fit(build_model(preset["model"], **kwargs), x[:warm], y[:warm], config, verbose=False)
        model = build_model(preset["model"], **kwargs)
        sync = torch.cuda.synchronize if device_name == "cuda" else (lambda: None)
        sync()
        barrier.wait(timeout=600)
        started = time.perf_counter()
        fit(model, x, y, config, verbose=False)
        sync()
        results.put((rank, time.perf_counter() - started, (n + config.batch_size - 1) // config.batch_size,
                     config.batch_size))
    except BaseException as e:  # reported by the parent as one line
        barrier.abort()
        results.put((rank, None, f"{type(e).__name__}: {e}", None))


def measure(preset: str, runs: int = 1, steps: int = 60, device: str = "auto", data_dir=None,
            model_kwargs: dict | None = None) -> dict:
    """Time `steps` steps of `preset` in `runs` processes at once; the slowest decides the epoch time."""
    import multiprocessing as mp

    from digitlab.errors import ConfigError
    from digitlab.train.device import resolve_device
    from digitlab.train.presets import get_preset

    get_preset(preset)  # a bad name fails here, in one line, before any process starts
    device_name = resolve_device(device).type
    threads = max(1, (os.cpu_count() or 1) // runs)
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; each run gets its own context, as in training
    barrier, results = ctx.Barrier(runs), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(rank, preset, model_kwargs or {}, device_name, steps, data_dir,
                                               threads, barrier, results)) for rank in range(runs)]
    for p in procs:
        p.start()
    got = []
    while len(got) < runs:  # a worker killed outright (out of memory, a crash) reports nothing: notice it
        try:
            got.append(results.get(timeout=2))
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and results.empty():
                codes = sorted({p.exitcode for p in procs})
                barrier.abort()
                raise ConfigError(f"epoch timing of preset {preset!r} failed: a worker died (exit codes {codes})")
    for p in procs:
        p.join(timeout=60)
    errors = [detail for _, seconds, detail, _ in got if seconds is None]
    if errors:
        raise ConfigError(f"epoch timing of preset {preset!r} failed: {errors[0]}")
    per_step = max(seconds / n_steps for _, seconds, n_steps, _ in got)
    batch = got[0][3]
    steps_per_epoch = (TRAIN_IMAGES + batch - 1) // batch
    return {"preset": preset, "runs": runs, "device": device_name, "steps": got[0][2], "batch_size": batch,
            "ms_per_step": 1000 * per_step, "epoch_s": per_step * steps_per_epoch,
            "images_per_s_each": batch / per_step, "images_per_s_total": runs * batch / per_step}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model_kwargs = json.loads(args.model_kwargs)
        if not isinstance(model_kwargs, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        print(f"epoch_time: error: --model-kwargs must be a JSON object such as '{{\"widths\": [8, 16, 32]}}' ({e})",
              file=sys.stderr)
        return 2
    return with_one_line_errors("epoch_time", lambda a: report(a, model_kwargs), args)


def report(args, model_kwargs: dict) -> int:
    setup_lines(args.device if args.device != "auto" else "cpu")
    figures = measure(args.preset, args.runs, args.steps, args.device, args.data_dir, model_kwargs)
    print(f"preset {args.preset}, {args.runs} run(s) at once on {figures['device']}: {figures['ms_per_step']:.2f} ms "
          f"per step of {figures['batch_size']} ({figures['steps']} steps timed), {figures['epoch_s']:.1f} s per "
          f"60,000-image epoch each, {figures['images_per_s_total']:,.0f} training images/s together")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
