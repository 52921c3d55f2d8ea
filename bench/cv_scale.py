"""Bench: cross-validation wall time with the local executor vs Ray with 1 and 2 workers.

Goal: Ray with 1 worker within 15% of the local executor (the price of running folds as Ray tasks);
Ray with 2 workers should approach 2x on a 2-core machine. Every run uses one torch thread per fold,
so the three give bit-identical scores (checked and printed). Times are the CV only (`executor.map`:
shipping tasks, training, scoring); starting Ray (`ray.init`) and warming its workers (importing
torch and digitlab, torch's lazy first-step imports) are one-time costs, measured and printed apart,
and the local process is warmed the same way before its timing. A 2-thread local run is printed too:
it is what one process makes of both cores without Ray.

    DIGITLAB_DATA_DIR=../shared/data python bench/cv_scale.py                       # the figure
    DIGITLAB_DATA_DIR=../shared/data python bench/cv_scale.py --subset 4000 --epochs 1  # a check
"""

from __future__ import annotations

import argparse
import os
import time

import _common  # noqa: F401  (puts src/ on the path)

GOAL_RATIO = 1.15  # Ray with 1 worker / local


def timed_cv(model, x, y, args, executor, threads=1):
    from digitlab.evaluate.crossval import cross_validate
    from digitlab.train.config import TrainConfig

    config = TrainConfig.from_flat(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device="cpu", threads=threads)
    started = time.perf_counter()
    result = cross_validate(model, x, y, folds=args.folds, config=config, seed=args.seed, executor=executor)
    return time.perf_counter() - started, result


def ray_run(model, x, y, args, workers: int):
    from digitlab.evaluate.ray_executor import RayExecutor

    executor = RayExecutor(num_cpus=workers, cpus_per_fold=1)
    with executor:
        warm_s = executor.warm_up(model)
        cv_s, result = timed_cv(model, x, y, args, executor)
    return executor.init_time_s, warm_s, cv_s, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: cnn if registered, else mlp")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--subset", type=int, default=20000, help="first N training images (default 20,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-local-2t", action="store_true", help="skip the 2-thread local run")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import numpy as np

    from digitlab.data.dataset import load_dataset
    from digitlab.evaluate.crossval import LocalExecutor, cross_validate
    from digitlab.models.registry import list_models
    from digitlab.train.config import TrainConfig

    model = args.model or ("cnn" if "cnn" in {e.name for e in list_models()} else "mlp")
    env = _common.setup_lines("cpu")
    data = load_dataset("mnist")
    x, y = data.x_train[: args.subset], data.y_train[: args.subset]
    print(f"task: {args.folds}-fold CV of {model}, {args.epochs} epochs, batch {args.batch_size}, on {len(x):,} "
          f"MNIST images, 1 torch thread per fold; Ray: local instance, 1 CPU per fold")

    # Warm this process as the Ray workers are warmed (lazy imports: sklearn's KFold, torch's first
    # optimizer step): a tiny CV, untimed. The Ray runs profit from it too, being driven from here.
    cross_validate(model, x[:256], y[:256], folds=2, config=TrainConfig.from_flat(epochs=1, threads=1, device="cpu"))
    local_s, local = timed_cv(model, x, y, args, LocalExecutor())
    local2_s, local2 = (None, None) if args.skip_local_2t else timed_cv(model, x, y, args, LocalExecutor(), threads=2)
    init1, warm1, ray1_s, ray1 = ray_run(model, x, y, args, 1)
    init2, warm2, ray2_s, ray2 = ray_run(model, x, y, args, 2)

    def line(name, seconds, result, extra=""):
        scores = " ".join(f"{100 * s:.3f}" for s in result.scores)
        fold_s = " ".join(f"{f.train_time_s:.2f}" for f in result.folds)
        print(f"{name:<18}: {seconds:7.2f} s  (fold training {fold_s} s)  folds {scores}  "
              f"mean {100 * result.mean:.3f}{extra}")

    line("local (1 thread)", local_s, local)
    if local2 is not None:
        line("local (2 threads)", local2_s, local2, "  (not bit-comparable: 2 threads)")
    line("Ray, 1 worker", ray1_s, ray1, f"  (+ ray.init {init1:.1f} s, worker warm-up {warm1:.1f} s)")
    line("Ray, 2 workers", ray2_s, ray2, f"  (+ ray.init {init2:.1f} s, worker warm-up {warm2:.1f} s)")
    identical = bool(np.array_equal(local.scores, ray1.scores) and np.array_equal(local.scores, ray2.scores))
    ratio, speedup = ray1_s / local_s, local_s / ray2_s
    print(f"scores identical across executors: {identical}")
    print(f"Ray 1 worker / local: {ratio:.3f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'NOT met'}); "
          f"including ray.init and warm-up: {(init1 + warm1 + ray1_s) / local_s:.3f}")
    print(f"Ray 2 workers speed-up vs local 1 thread: {speedup:.2f}x"
          + (f"; vs local 2 threads: {local2_s / ray2_s:.2f}x" if local2 is not None else ""))
    _common.emit_json({
        "bench": "cv_scale", "model": model, "folds": args.folds, "epochs": args.epochs, "images": len(x),
        "local_s": round(local_s, 3), "local_2threads_s": round(local2_s, 3) if local2 is not None else None,
        "ray1_s": round(ray1_s, 3), "ray2_s": round(ray2_s, 3),
        "ray1_init_s": round(init1, 3), "ray1_warmup_s": round(warm1, 3),
        "ray2_init_s": round(init2, 3), "ray2_warmup_s": round(warm2, 3),
        "ray1_over_local": round(ratio, 4), "goal_ratio": GOAL_RATIO, "goal_met": ratio <= GOAL_RATIO,
        "ray2_speedup": round(speedup, 3), "scores_identical": identical,
        "mean_accuracy": round(local.mean, 5), "scores": [round(s, 5) for s in local.scores.tolist()],
        "commit": env["commit"], "load_average": env.get("load_average"),
    })


if __name__ == "__main__":
    main()
