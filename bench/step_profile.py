"""Where a training step's time goes: wall time per step, kernels launched per step, and how busy
the device is, for a preset (default `fast`).

Why: on an H200 `fast` trains at 3.3 ms per step (1.56 s for 469 steps) and at 2.8 ms
with torch.compile's CUDA graphs, against a goal of 0.5 s (1.07 ms per step). Whether a step is
bound by the host (Python and launching kernels: the device waits) or by the kernels themselves
decides what helps: capturing the whole step as a graph, or fewer and larger steps. This prints the
figures that decide it:

- wall ms per step, measured without the profiler, device synchronized;
- operators and device kernels per step, and the device's busy time per step (sum of kernel
  times), from torch.profiler over the same steps;
- busy fraction = busy time / wall time: near 1, kernel-bound; well below, host-bound;
- the operators and kernels that take the most time.

The steps are `fit`'s own (digitlab.train.loop), on the preset's settings, over a subset of
MNIST after an untimed warm-up (cuDNN's autotuning and any compilation happen there).

    .venv/bin/python bench/step_profile.py --data-dir ../shared/data/mnist          # CPU
    python3 bench/step_profile.py --device cuda --data-dir .carry/mnist
    python3 bench/step_profile.py --device cuda --preset fast+compile:reduce-overhead

A diagnostic, not a goal check: it trains on a subset and reports no accuracy, and its comparison is
between presets or devices, run one after another (bench/gpu_check.sh profiles `fast-gpu`, eager and
graphed, and `fast`). Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import positive_int, with_one_line_errors  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="fast", help="NAME or NAME+compile[:MODE] (default fast)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--steps", type=int, default=64, help="steps timed and profiled (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: digitlab's lookup)")
    p.add_argument("--top", type=positive_int, default=12, help="rows in each top list (default 12)")
    return p.parse_args(argv)


def device_time_us(event) -> float:
    """An event's own device time in microseconds (the attribute's name changed across torch versions)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def summarize(events, steps: int, wall_s: float, top: int) -> dict:
    """Per-step figures from profiler key averages (a list of FunctionEventAvg). Pure apart from reading them."""
    from torch.autograd import DeviceType

    ops = [e for e in events if e.device_type == DeviceType.CPU and e.key.startswith("aten::")]
    kernels = [e for e in events if e.device_type != DeviceType.CPU]
    busy_us = sum(device_time_us(e) for e in kernels)
    wall_ms = 1000 * wall_s / steps
    return {
        "steps": steps,
        "wall_ms_per_step": wall_ms,
        "aten_ops_per_step": sum(e.count for e in ops) / steps,
        "kernels_per_step": sum(e.count for e in kernels) / steps,
        "device_busy_ms_per_step": busy_us / 1000 / steps,
        "busy_fraction": (busy_us / 1000 / steps) / wall_ms if kernels and wall_ms else None,
        "top_ops_by_cpu_time": [(e.key, round(e.count / steps, 2), round(e.self_cpu_time_total / steps, 1))
                                for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:top]],
        "top_kernels_by_device_time": [(e.key[:90], round(e.count / steps, 2), round(device_time_us(e) / steps, 1))
                                       for e in sorted(kernels, key=lambda e: -device_time_us(e))[:top]],
    }


def main(argv=None) -> int:
    return with_one_line_errors("step_profile", profile_preset, parse_args(argv))


def profile_preset(args) -> int:
    from time_to_accuracy import parse_spec

    from digitlab.errors import ConfigError

    name, overrides = parse_spec(args.preset)
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    import torch
    from torch.profiler import ProfilerActivity, profile

    from digitlab.data.dataset import load_dataset
    from digitlab.provenance import environment
    from digitlab.models.registry import build_model
    from digitlab.train.config import TrainConfig
    from digitlab.train.device import resolve_device, seed_everything
    from digitlab.train.loop import fit
    from digitlab.train.presets import get_preset

    device = resolve_device(args.device)
    preset = get_preset(name)
    config = TrainConfig.from_flat(**{**preset["config"], **overrides, "epochs": 1, "device": device.type,
                                      "threads": args.threads, "seed": 0})
    data = load_dataset("mnist", data_dir=args.data_dir, download=args.data_dir is None)
    n = args.steps * config.batch_size
    if n > len(data.x_train):
        raise ConfigError(f"--steps {args.steps} of {config.batch_size} images need {n:,} training images, the "
                          f"data has {len(data.x_train):,}: ask for at most {len(data.x_train) // config.batch_size}")
    x, y = data.x_train[:n], data.y_train[:n]
    env = environment(device.type)
    print(f"Step profile: preset {args.preset}, batch {config.batch_size}, {args.steps} steps")
    print(f"  commit {env['commit']}  torch {torch.__version__}  device {device}  threads {torch.get_num_threads()}"
          f"  cpus {os.cpu_count()}" + (f"  GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))

    def one_run():
        seed_everything(0)
        model = build_model(preset["model"], **preset.get("model_kwargs", {}))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fit(model, x, y, config, verbose=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    warmup_s = one_run()  # autotuning, compilation, allocator growth: not measured
    wall_s = min(one_run() for _ in range(3))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        one_run()
    figures = summarize(prof.key_averages(), args.steps, wall_s, args.top)
    figures.update(preset=args.preset, device=str(device), batch_size=config.batch_size, warmup_s=warmup_s,
                   commit=env["commit"], torch=torch.__version__)

    print(f"  warm-up (untimed): {warmup_s:.1f}s")
    print(f"\nwall time per step:      {figures['wall_ms_per_step']:.3f} ms (best of 3 unprofiled runs, "
          f"{1000 * figures['wall_ms_per_step'] * 60000 / config.batch_size / 1e6:.2f} s per 60,000-image epoch)")
    print(f"aten operators per step: {figures['aten_ops_per_step']:.0f}")
    if device.type == "cuda":
        frac = figures["busy_fraction"]
        print(f"device kernels per step: {figures['kernels_per_step']:.0f}")
        print(f"device busy per step:    {figures['device_busy_ms_per_step']:.3f} ms"
              + (f" ({frac:.0%} of the wall time: "
                 + ("kernel-bound" if frac > 0.7 else "host-bound, the device waits on Python and launches") + ")"
                 if frac is not None else ""))
        print("\ntop kernels (launches per step, device us per step):")
        for key, count, us in figures["top_kernels_by_device_time"]:
            print(f"  {us:8.1f} us  x{count:<5g} {key}")
    print("\ntop operators (calls per step, CPU us per step):")
    for key, count, us in figures["top_ops_by_cpu_time"]:
        print(f"  {us:8.1f} us  x{count:<5g} {key}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
