"""The article's Keras code, timed on this machine: the reference for the speed goals of bench/seed_mlp.py and bench/cv_mlp.py.

Runs under a Python that has TensorFlow and Keras (not digitlab's environment: TensorFlow and torch
in one process fight over threads), reads the MNIST IDX files with numpy, and prints one JSON line.
The digitlab benches call it in a subprocess when given `--keras-python PATH`:

    python3 -m venv /tmp/kerasenv && /tmp/kerasenv/bin/pip install tensorflow-cpu
    /tmp/kerasenv/bin/python bench/keras_reference.py --data-dir ../shared/data/mnist fit
    /tmp/kerasenv/bin/python bench/keras_reference.py --data-dir ../shared/data/mnist cv

`fit`: the article's 5 epochs at batch 128 (rmsprop, categorical cross-entropy), then test accuracy.
`cv`: the article's 5-fold CV with a fresh model per fold (KFold shuffle, random_state=1, as
scikit-learn splits it; indices computed here with numpy the same way), test fold as validation.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir: Path):
    def find(stem):
        for name in (stem + ".gz", stem):
            if (data_dir / name).exists():
                return data_dir / name
        raise SystemExit(f"keras_reference: {stem}(.gz) not found in {data_dir}")

    return (read_idx(find("train-images-idx3-ubyte")), read_idx(find("train-labels-idx1-ubyte")),
            read_idx(find("t10k-images-idx3-ubyte")), read_idx(find("t10k-labels-idx1-ubyte")))


def build():
    from keras import layers, models

    net = models.Sequential([layers.Input((784,)), layers.Dense(512, activation="relu"),
                             layers.Dense(10, activation="softmax")])
    net.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return net


def kfold_indices(n: int, folds: int, seed: int):
    """scikit-learn's KFold(folds, shuffle=True, random_state=seed) without scikit-learn."""
    order = np.random.RandomState(seed).permutation(n)
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    start = 0
    for size in sizes:
        test = order[start : start + size]
        mask = np.ones(n, bool)
        mask[test] = False
        yield np.flatnonzero(mask), np.sort(test)
        start += size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("fit", "cv"))
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITLAB_DATA_DIR", "../shared/data")) / "mnist")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1, help="fit: time this many fresh runs and report the fastest")
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow's intra- and inter-op threads (default: TensorFlow's, one per core)")
    args = p.parse_args()
    import keras

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    x_train, y_train, x_test, y_test = load(args.data_dir)
    x = x_train.reshape(-1, 784).astype("float32") / 255
    y = np.eye(10, dtype="float32")[y_train]
    keras.utils.set_random_seed(0)
    build().fit(x[:512], y[:512], epochs=1, batch_size=128, verbose=0)  # warm-up, as the digitlab benches do
    if args.what == "fit":
        runs = []
        for _ in range(max(1, args.repeats)):
            net = build()
            started, cpu = time.perf_counter(), time.process_time()
            hist = net.fit(x, y, epochs=args.epochs, batch_size=128, verbose=0)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            xt = x_test.reshape(-1, 784).astype("float32") / 255
            _, test_acc = net.evaluate(xt, np.eye(10, dtype="float32")[y_test], verbose=0)
            runs.append((elapsed, cpu, float(hist.history["accuracy"][-1]), float(test_acc)))
        elapsed, cpu, train_acc, test_acc = min(runs)
        out = {"keras_s": round(elapsed, 3), "keras_cpu_s": round(cpu, 3), "train_acc": train_acc,
               "test_acc": test_acc, "keras_runs_s": [round(r[0], 3) for r in runs],
               "keras_runs_cpu_s": [round(r[1], 3) for r in runs], "threads": args.threads}
    else:
        started = time.perf_counter()
        scores = []
        for train_idx, test_idx in kfold_indices(len(x), args.folds, 1):
            net = build()
            net.fit(x[train_idx], y[train_idx], epochs=args.epochs, batch_size=128,
                    validation_data=(x[test_idx], y[test_idx]), verbose=0)
            scores.append(float(net.evaluate(x[test_idx], y[test_idx], verbose=0)[1]))
        out = {"keras_s": round(time.perf_counter() - started, 3), "scores": scores}
    out.update(keras=keras.__version__, backend=keras.backend.backend())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
