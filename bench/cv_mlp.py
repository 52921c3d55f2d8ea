"""Bench: 5-fold cross-validation of the article's mlp (5 epochs x 5 folds on 48,000 images each).

Goal: at most 1/4 of Keras's time on the same machine (Keras takes about 72 s on a 2-core machine,
so 18 s; with `--keras-python PATH` the article's Keras CV is timed here, in the
same run, and the goal follows that measurement). digitlab runs the folds as `digitlab cv` does by
default (`--executor auto`: worker processes on a multi-core CPU). The baseline measured in the
same run is the article's protocol as a plain PyTorch user writes it: the same KFold indices, a fresh
model and optimizer per fold, a DataLoader over a TensorDataset, per-batch `.item()`, then the test fold
scored. Both time the whole CV (data slicing, training, scoring the test folds), not the data loading.

    DIGITLAB_DATA_DIR=../shared/data python bench/cv_mlp.py                 # the full figure
    DIGITLAB_DATA_DIR=../shared/data python bench/cv_mlp.py --keras-python /tmp/kerasenv/bin/python
    DIGITLAB_DATA_DIR=../shared/data python bench/cv_mlp.py --subset 6000 --epochs 1 --folds 3   # a check
"""

from __future__ import annotations

import argparse
import time

import _common  # puts src/ on the path; shared setup and baseline loop

KERAS_REFERENCE_S = 72.0  # Keras on a 2-core machine, 5 folds x 5 epochs, when it is not timed in this run


def make_executor(name: str):
    """The executor `digitlab cv --executor NAME` would use ("auto": processes on a multi-core CPU)."""
    from digitlab.evaluate.crossval import LocalExecutor
    from digitlab.evaluate.process_executor import ProcessExecutor, auto_executor

    if name == "auto":
        return auto_executor("cpu")
    return ProcessExecutor() if name == "processes" else LocalExecutor()


def digitlab_cv(x, y, folds: int, epochs: int, seed: int, executor: str = "auto"):
    from digitlab.evaluate.crossval import cross_validate
    from digitlab.train.config import TrainConfig

    config = TrainConfig.from_flat(epochs=epochs, batch_size=128, optimizer="rmsprop", seed=seed, device="cpu")
    started = time.perf_counter()
    result = cross_validate("mlp", x, y, folds=folds, config=config, seed=seed, executor=make_executor(executor))
    return time.perf_counter() - started, result.scores.tolist()


def plain_pytorch_cv(x, y, folds: int, epochs: int, seed: int):
    """What a user writes after reading the PyTorch tutorials (and sklearn's KFold)."""
    import torch
    from sklearn.model_selection import KFold
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    started = time.perf_counter()
    scores = []
    for k, (train_idx, test_idx) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(x)):
        torch.manual_seed(seed + k)
        x_train = torch.tensor(x[train_idx], dtype=torch.float32).reshape(-1, 784) / 255.0
        x_test = torch.tensor(x[test_idx], dtype=torch.float32).reshape(-1, 784) / 255.0
        y_train, y_test = torch.tensor(y[train_idx]), torch.tensor(y[test_idx])
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        loss_fn = nn.CrossEntropyLoss()
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=128, shuffle=True)
        for _epoch in range(epochs):
            _common.plain_pytorch_epoch(model, opt, loss_fn, loader)
            with torch.no_grad():  # the article validates on the test fold every epoch
                val_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        scores.append(val_acc)
    return time.perf_counter() - started, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--subset", type=int, default=None, help="first N training images only (a quick check)")
    parser.add_argument("--seed", type=int, default=1, help="KFold random_state and training seed (default 1)")
    parser.add_argument("--executor", choices=("auto", "local", "processes"), default="auto",
                        help="how digitlab runs the folds (default auto, as `digitlab cv`: processes on a multi-core CPU)")
    parser.add_argument("--keras-python", default=None,
                        help="a Python with TensorFlow + Keras: time the article's Keras CV here too "
                             "(default: $DIGITLAB_KERAS_PYTHON); the goal is then 1/4 of that time")
    args = parser.parse_args()
    from digitlab.train.device import prepare_training_process

    prepare_training_process()  # as the CLI's training commands do, before torch starts its threads

    import numpy as np

    from digitlab.data.dataset import load_dataset

    env = _common.setup_lines("cpu")
    data = load_dataset("mnist")
    x, y = data.x_train, data.y_train
    if args.subset:
        x, y = x[: args.subset], y[: args.subset]
    print(f"task: {args.folds}-fold CV of the mlp, {args.epochs} epochs, batch 128, rmsprop, on {len(x):,} images "
          f"(KFold shuffle=True random_state={args.seed}); fresh model per fold in both")

    # Warm both up untimed (first-call costs: kernel selection, lazy imports), so neither pays them alone.
    digitlab_cv(x[:512], y[:512], 2, 1, args.seed, args.executor)
    plain_pytorch_cv(x[:512], y[:512], 2, 1, args.seed)
    fmt = lambda s: " ".join(f"{100 * v:.3f}" for v in s)  # noqa: E731
    ours_s, ours = digitlab_cv(x, y, args.folds, args.epochs, args.seed, args.executor)
    print(f"digitlab ({make_executor(args.executor).name}): {ours_s:7.2f} s  folds {fmt(ours)}  mean {100 * np.mean(ours):.3f} std {100 * np.std(ours):.3f}",
          flush=True)
    base_s, base = plain_pytorch_cv(x, y, args.folds, args.epochs, args.seed)
    print(f"plain PyTorch : {base_s:7.2f} s  folds {fmt(base)}  mean {100 * np.mean(base):.3f} std {100 * np.std(base):.3f}")
    print(f"speed-up vs plain PyTorch: {base_s / ours_s:.2f}x")
    full = not args.subset and (args.folds, args.epochs) == (5, 5)
    keras = _common.keras_reference("cv", args.keras_python) if full else None
    if keras is not None:
        reference, where = keras["keras_s"], f"Keras {keras['keras']} measured here"
        print(f"keras ({keras['backend']}): {reference:7.2f} s  folds {fmt(keras['scores'])}  "
              f"mean {100 * np.mean(keras['scores']):.3f}")
    else:
        reference, where = KERAS_REFERENCE_S, "the reference Keras figure"
    goal = reference / 4
    if full:
        print(f"vs {where} ({reference:.1f} s): {reference / ours_s:.2f}x; goal >= 4x (<= {goal:.1f} s): "
              f"{'met' if ours_s <= goal else 'not met'}")
    else:
        print("(a short setting: the goal and the Keras reference apply to 5 folds x 5 epochs on 60,000 images)")
    _common.emit_json({
        "bench": "cv_mlp", "folds": args.folds, "epochs": args.epochs, "images": len(x),
        "digitlab_s": round(ours_s, 3), "digitlab_scores": [round(s, 5) for s in ours],
        "digitlab_mean": round(float(np.mean(ours)), 5), "digitlab_std": round(float(np.std(ours)), 5),
        "plain_pytorch_s": round(base_s, 3), "plain_pytorch_scores": [round(s, 5) for s in base],
        "plain_pytorch_mean": round(float(np.mean(base)), 5), "speedup_vs_plain": round(base_s / ours_s, 3),
        "keras_reference_s": reference if full else None, "keras_measured": keras is not None,
        "goal_s": round(goal, 2) if full else None, "executor": make_executor(args.executor).name,
        "commit": env["commit"], "threads": env.get("torch_threads"), "load_average": env.get("load_average"),
    })


if __name__ == "__main__":
    main()
