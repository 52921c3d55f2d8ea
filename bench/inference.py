"""Inference speed: batch throughput (images/s) of torch and ONNX Runtime for the article's `mlp` and
the shipped CNN, and single-image end-to-end latency (decode + preprocess + model) of a 400x400 PNG.

Goals on 2 CPU cores: mlp >= 200,000 images/s, shipped CNN >= 20,000 images/s, latency p50 <= 5 ms.
Baseline in the same run: naive per-image torch calls (one forward per image, batch 1), as a script
looping over files would do. Accuracy on the MNIST test set is printed beside every batch figure.

The mlp is trained in-process (1 epoch, article settings) so that its accuracy means something; the
CNN is whatever model ships in src/digitlab/pretrained (or --model).

    .venv/bin/python bench/inference.py                    # full run (about a minute)
    .venv/bin/python bench/inference.py --quick            # smoke test

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
from _common import emit_json, setup_lines  # noqa: E402

GOALS = {"mlp": 200_000, "cnn": 20_000, "latency_p50_ms": 5.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="CNN run folder (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    p.add_argument("--batch", type=int, default=1024, help="batch size for the batched figures (default 1024)")
    p.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure (default 3)")
    p.add_argument("--latency-images", type=int, default=300, help="PNGs for the latency figure (default 300)")
    p.add_argument("--quick", action="store_true", help="smoke test: short timings, few images")
    return p.parse_args(argv)


def throughput(fn, x: np.ndarray, batch: int, seconds: float) -> float:
    """Images per second of fn over x in batches, after one warm-up batch; at least one full pass."""
    fn(x[:batch])
    done, started = 0, time.perf_counter()
    while True:
        for i in range(0, len(x), batch):
            fn(x[i : i + batch])
            done += len(x[i : i + batch])
        if time.perf_counter() - started >= seconds:
            return done / (time.perf_counter() - started)


def accuracy(probs_fn, x, y, batch) -> float:
    pred = np.concatenate([probs_fn(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).mean())


def bench_model(name, model, x, y, args) -> dict:
    import torch

    from digitlab.inference.onnx_export import OnnxBackend, export_onnx
    from digitlab.inference.recognizer import TorchBackend

    torch_backend = TorchBackend(model)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(model, Path(folder) / "m.onnx", parity_n=200)
        onnx_backend = OnnxBackend(Path(folder) / "m.onnx", threads=args.threads)

    def naive(xb):  # the baseline: one forward call per image
        with torch.no_grad():
            return np.stack([torch.softmax(model(torch.from_numpy(img[None, None])), 1)[0].numpy() for img in xb])

    n_naive = 300 if args.quick else 2000
    out = {
        "torch_batched": throughput(torch_backend, x, args.batch, args.seconds),
        "onnx_batched": throughput(onnx_backend, x, args.batch, args.seconds),
        "naive_per_image": throughput(naive, x[:n_naive], 100, args.seconds / 2),
        "accuracy_torch": accuracy(torch_backend, x, y, args.batch),
        "accuracy_onnx": accuracy(onnx_backend, x, y, args.batch),
        "params": sum(p.numel() for p in model.parameters()),
    }
    goal = GOALS["mlp" if name == "mlp" else "cnn"]
    best = max(out["torch_batched"], out["onnx_batched"])
    print(f"\n{name} ({out['params']:,} params), batch {args.batch}, test accuracy torch {out['accuracy_torch']:.4f}"
          f" / onnx {out['accuracy_onnx']:.4f}")
    for key in ("torch_batched", "onnx_batched", "naive_per_image"):
        print(f"  {key:16s} {out[key]:12,.0f} images/s   x{out[key] / out['naive_per_image']:7.1f} vs naive")
    print(f"  goal >= {goal:,} images/s: {'met' if best >= goal else 'NOT met'} (best {best:,.0f})")
    return out


def latency(args, x_test, y_test, runtime: str) -> dict:
    """p50/p90 ms of Recognizer.predict_one on 400x400 PNG bytes (decode + preprocess + model)."""
    from digitlab.inference.recognizer import Recognizer
    from render import render_user_image

    rec = Recognizer.load(args.model, runtime=runtime)
    rng = np.random.default_rng(0)
    n = 40 if args.quick else args.latency_images
    styles = ("plain", "thick", "thin", "lighting", "ruled", "squared", "rgba")  # the 400x400 PNG styles
    pngs = [render_user_image(x_test[i], styles[i % len(styles)], rng) for i in range(n)]
    rec.predict_one(pngs[0])
    times, correct = [], 0
    for i, data in enumerate(pngs):
        started = time.perf_counter()
        p = rec.predict_one(data)
        times.append((time.perf_counter() - started) * 1000)
        correct += p.digit == y_test[i]
    p50, p90 = np.percentile(times, [50, 90])
    print(f"  {runtime:5s} p50 {p50:.2f} ms, p90 {p90:.2f} ms, mean {np.mean(times):.2f} ms over {n} PNGs "
          f"(accuracy {correct / n:.4f}); goal p50 <= {GOALS['latency_p50_ms']} ms: "
          f"{'met' if p50 <= GOALS['latency_p50_ms'] else 'NOT met'}")
    return {"p50_ms": float(p50), "p90_ms": float(p90), "accuracy": correct / n}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.seconds = 0.5
    import torch

    torch.set_num_threads(args.threads)
    from digitlab.data.dataset import load_dataset
    from digitlab.models.registry import build_model
    from digitlab.models.storage import load_model
    from digitlab.train.config import TrainConfig
    from digitlab.train.loop import fit

    env = setup_lines("cpu")
    data = load_dataset("mnist", download=False)
    x = data.x_test.astype(np.float32) / 255.0
    y = data.y_test
    torch.manual_seed(0)
    mlp = build_model("mlp")
    n_train = 5000 if args.quick else 60000
    started = time.perf_counter()
    fit(mlp, data.x_train[:n_train], data.y_train[:n_train], TrainConfig(epochs=1, device="cpu", threads=args.threads))
    print(f"mlp trained in-process: 1 epoch on {n_train:,} images in {time.perf_counter() - started:.1f} s")
    mlp.eval()
    cnn = load_model(args.model)
    cnn_name = cnn.digitlab_meta["architecture"]["name"]
    figures = {"mlp": bench_model("mlp", mlp, x, y, args), cnn_name: bench_model(cnn_name, cnn, x, y, args)}
    print(f"\nsingle-image latency, 400x400 PNG -> digit ({cnn_name}):")
    figures["latency"] = {rt: latency(args, data.x_test, y, rt) for rt in ("torch", "onnx")}
    figures.update(bench="inference", threads=args.threads, batch=args.batch, commit=env["commit"], goals=GOALS)
    emit_json(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
