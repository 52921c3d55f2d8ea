"""Fewer, larger steps: can the `fast` convnet reach 99% in one epoch with half the optimizer steps?

On a GPU a small net's training time is its number of steps times the cost of launching one, not its
arithmetic; so a setting with fewer steps would be the way to a faster time to 99% there. This checks
the accuracy side on a CPU (the same arithmetic, bf16 where the CPU has it), on the validation split
carved from the training set (`val_split=5000`; the test set is not looked at). The baseline is
`fast` as the preset has it (batch 128, widths 16-32-96), in the same run.

Each setting trains one fresh model per seed, one thread each, two at a time.

    .venv/bin/python bench/fewer_steps.py                 # all settings, seeds 0-2 (about 10 minutes)
    .venv/bin/python bench/fewer_steps.py --seeds 2 --only "batch 256"
    .venv/bin/python bench/fewer_steps.py --seeds 5 --only adam     # Adam: how `fast-gpu` was chosen

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import positive_int  # noqa: E402

ADAM = {"optimizer": "adam", "lr": 0.01, "beta1": 0.7, "beta2": 0.9, "weight_decay": 0.0}
# (label, widths, the preset's settings changed)
SETTINGS = [
    ("fast as it is (baseline)", (16, 32, 96), {}),
    ("batch 256, widths 32-64-128, lr 0.1", (32, 64, 128), {"batch_size": 256, "lr": 0.1}),
    ("batch 256, widths 32-64-128, lr 0.2", (32, 64, 128), {"batch_size": 256, "lr": 0.2}),
    ("batch 512, 2 epochs, widths 32-64-128, lr 0.2", (32, 64, 128),
     {"batch_size": 512, "epochs": 2, "lr": 0.2, "warmup_epochs": 0.4}),
    ("batch 512, 2 epochs, widths 32-64-128, lr 0.4", (32, 64, 128),
     {"batch_size": 512, "epochs": 2, "lr": 0.4, "warmup_epochs": 0.4}),
    ("batch 512, widths 64-128-256, lr 0.4", (64, 128, 256), {"batch_size": 512, "lr": 0.4}),
    # Adam with betas 0.7/0.9 (a short run's momentum), no weight decay. `fast-gpu` is the second.
    ("batch 256, widths 32-64-128, adam lr 0.01", (32, 64, 128), {**ADAM, "batch_size": 256}),
    ("batch 512, widths 32-64-128, adam lr 0.01", (32, 64, 128), {**ADAM, "batch_size": 512}),
    ("batch 512, widths 16-32-96, adam lr 0.01", (16, 32, 96), {**ADAM, "batch_size": 512}),
    ("batch 1024, widths 32-64-128, adam lr 0.04", (32, 64, 128), {**ADAM, "batch_size": 1024, "lr": 0.04}),
    ("batch 128, widths 32-64-128", (32, 64, 128), {}),
    ("batch 128, widths 32-64-192", (32, 64, 192), {}),
    ("batch 128, widths 64-128-256", (64, 128, 256), {}),
]
VAL_SPLIT = 5000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per setting (default 3)")
    p.add_argument("--only", default=None, help="run only the settings whose label contains this text")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: digitlab's lookup)")
    p.add_argument("--workers", type=positive_int, default=2, help="runs at a time, one thread each (default 2)")
    return p.parse_args(argv)


def run(job):
    """One fresh model: (label, seed, validation accuracy, seconds, optimizer steps)."""
    label, widths, changes, seed, data_dir = job
    import torch

    torch.set_num_threads(1)
    from digitlab.data.dataset import load_dataset
    from digitlab.models.registry import build_model
    from digitlab.train.config import TrainConfig
    from digitlab.train.device import seed_everything
    from digitlab.train.loop import fit
    from digitlab.train.presets import get_preset

    data = load_dataset("mnist", data_dir=data_dir, download=data_dir is None)
    config = TrainConfig.from_flat(**{**get_preset("fast")["config"], **changes, "val_split": VAL_SPLIT,
                                      "seed": seed, "device": "cpu", "threads": 1})
    seed_everything(seed)
    model = build_model("fast", widths=list(widths))
    started = time.perf_counter()
    history = fit(model, data.x_train, data.y_train, config, verbose=False)
    seconds = time.perf_counter() - started
    steps = config.epochs * -(-(len(data.x_train) - VAL_SPLIT) // config.batch_size)
    return label, seed, history.last("val_accuracy"), seconds, steps


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from digitlab.provenance import environment

    env = environment("cpu")
    settings = [s for s in SETTINGS if args.only is None or args.only in s[0] or s is SETTINGS[0]]
    print("Fewer, larger steps for `fast`: validation accuracy (val_split=5000) after one run per seed")
    print(f"  commit {env['commit']}  torch {torch.__version__}  device cpu  threads 1 per run, "
          f"{args.workers} runs at a time  cpus {os.cpu_count()}  load average {os.getloadavg()[0]:.2f}")
    jobs = [(label, widths, changes, seed, args.data_dir) for label, widths, changes in settings
            for seed in range(args.seeds)]
    results: dict[str, dict] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for label, seed, acc, seconds, steps in pool.map(run, jobs):
            r = results.setdefault(label, {"steps": steps, "val_accuracy": [], "seconds": []})
            r["val_accuracy"].append(acc)
            r["seconds"].append(round(seconds, 2))
            print(f"  {label:48s} seed {seed}  validation {acc:.4f}  {seconds:6.1f}s CPU  {steps} steps", flush=True)
    base = results[SETTINGS[0][0]]
    base_mean = sum(base["val_accuracy"]) / len(base["val_accuracy"])
    print(f"\n{'setting':48s} {'steps':>6} {'mean val':>9} {'vs baseline':>12} {'min':>8}")
    for label, r in results.items():
        r["mean"] = sum(r["val_accuracy"]) / len(r["val_accuracy"])
        r["vs_baseline"] = r["mean"] - base_mean
        print(f"{label:48s} {r['steps']:>6} {r['mean']:>9.4f} {r['vs_baseline']:>+12.4f} {min(r['val_accuracy']):>8.4f}")
    print(json.dumps({"commit": env["commit"], "val_split": VAL_SPLIT, "seeds": args.seeds, "settings": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
