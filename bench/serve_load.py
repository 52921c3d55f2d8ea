"""Load test of `digitlab serve`: requests/s and latency at several concurrency levels.

Goal (2 cores): >= 300 req/s with p99 <= 50 ms at concurrency 8, zero errors.

The bench starts the server as a subprocess on 127.0.0.1 (a free port), then fires requests from this
process (a separate process from the server) with httpx's async client over keep-alive connections,
for a fixed time per level. Each request is one real MNIST test digit (the 28x28 JSON array by
default, or a PNG with --payload png), so the accuracy of the answers is printed beside the speed.
Baselines measured in the same run: GET /api/health at the same concurrency (the framework's ceiling:
HTTP + routing, no inference) and the in-process Recognizer call on the same input.

    python bench/serve_load.py                       # 20 s per level, concurrency 1, 8, 32
    python bench/serve_load.py --duration 3          # a quick check that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per level")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each level")
    p.add_argument("--levels", default="1,8,32", help="comma-separated concurrency levels")
    p.add_argument("--payload", choices=("array", "png"), default="array",
                   help="array: JSON 28x28 in [0, 1] (no decoding); png: multipart upload of a drawn-style PNG")
    p.add_argument("--model", default=None, help="model to serve (default: the shipped model)")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per server worker")
    p.add_argument("--images", type=int, default=2000, help="distinct MNIST test images to cycle through")
    return p.parse_args(argv)


# -- payloads --------------------------------------------------------------------------------------

def load_digits(n: int):
    """(uint8 (n, 28, 28) white-on-black digits, labels or None, where they came from)."""
    try:
        from digitlab.data.dataset import load_dataset

        data = load_dataset("mnist", download=False)
        return data.x_test[:n], data.y_test[:n], "MNIST test set"
    except Exception as exc:  # noqa: BLE001 - the bench still measures speed without the data
        rng = np.random.default_rng(0)
        x = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):  # a random thick stroke per image
            r0, c0, r1, c1 = rng.integers(5, 23, 4)
            for t in np.linspace(0, 1, 40):
                r, c = int(round(r0 + t * (r1 - r0))), int(round(c0 + t * (c1 - c0)))
                x[i, max(0, r - 1): r + 2, max(0, c - 1): c + 2] = 255
        return x, None, f"synthetic strokes (MNIST not available: {exc}); accuracy not measured"


def png_of(digit28: np.ndarray) -> bytes:
    """What a user's drawing looks like: dark ink on white, 10x upscaled, as PNG."""
    from PIL import Image

    image = Image.fromarray(255 - digit28).resize((280, 280), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def build_requests(x: np.ndarray, payload: str) -> list[tuple[dict, bytes]]:
    """Pre-encoded (headers, body) per image, so the client spends no time encoding during the run."""
    out = []
    for img in x:
        if payload == "array":
            body = json.dumps({"pixels": np.round(img / 255.0, 4).tolist()}, separators=(",", ":")).encode()
            out.append(({"content-type": "application/json"}, body))
        else:
            boundary = "digitlabbench"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
                    f"Content-Type: image/png\r\n\r\n").encode() + png_of(img) + f"\r\n--{boundary}--\r\n".encode()
            out.append(({"content-type": f"multipart/form-data; boundary={boundary}"}, body))
    return out


# -- the server ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "digitlab", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(args.workers), "--threads", str(args.threads), "--runtime", args.runtime,
           "--no-access-log", "--log-level", "warning"]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("the server did not become ready in 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- the load --------------------------------------------------------------------------------------

async def _load(base: str, method: str, path: str, requests, concurrency: int, duration: float, warmup: float):
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    answers: list[tuple[int, int | None]] = []   # (request index, digit answered)
    errors = {"count": 0, "first": None}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker(k: int):
            i = k
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                idx = i % len(requests) if requests else 0
                i += concurrency
                t0 = time.perf_counter()
                try:
                    if method == "GET":
                        r = await client.get(path)
                    else:
                        headers, body = requests[idx]
                        r = await client.post(path, content=body, headers=headers)
                    ok = r.status_code == 200
                    digit = r.json().get("digit") if ok and method == "POST" else None
                except Exception as exc:  # noqa: BLE001 - every failure is counted as an error
                    ok, digit = False, None
                    errors["first"] = errors["first"] or repr(exc)
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)
                    if ok:
                        answers.append((idx, digit))
                    else:
                        errors["count"] += 1
                        errors["first"] = errors["first"] or f"HTTP {r.status_code}: {r.text[:200]}"

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    lat = np.array(latencies) * 1000.0
    return {
        "concurrency": concurrency,
        "requests": int(lat.size),
        "req_per_s": round(lat.size / duration, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "errors": errors["count"],
        "first_error": errors["first"],
        "answers": answers,
    }


def run_level(base, method, path, requests, concurrency, duration, warmup):
    return asyncio.run(_load(base, method, path, requests, concurrency, duration, warmup))


def in_process_ms(args, x: np.ndarray, payload: str, repeats: int = 300) -> float:
    """Median ms of the Recognizer call the endpoint makes, in this process, 1 torch thread."""
    import torch

    from digitlab.inference.recognizer import Recognizer

    torch.set_num_threads(args.threads)
    rec = Recognizer.load(args.model, runtime=args.runtime)
    times = []
    for i in range(repeats):
        img = x[i % len(x)]
        t0 = time.perf_counter()
        if payload == "array":
            rec.predict_batch28((img / 255.0).astype(np.float32)[None])
        else:
            rec.predict_one(png_of(img))
        times.append(time.perf_counter() - t0)
    return float(np.median(times[20:]) * 1000.0)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from digitlab.provenance import environment

    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    x, y, source = load_digits(args.images)
    requests = build_requests(x, args.payload)
    body_bytes = int(np.mean([len(b) for _, b in requests]))

    baseline_ms = in_process_ms(args, x, args.payload)
    env = environment("cpu")
    print("setup:")
    print(f"  commit {env['commit']}  versions {env['versions']}")
    print(f"  machine {env['machine']}, {env['cpu_count']} cores; server: {args.workers} worker(s), "
          f"{args.threads} torch thread(s) each, runtime {args.runtime}, model {args.model or 'shipped'}")
    print(f"  client: httpx async in this process, keep-alive, 127.0.0.1; {args.duration:g} s per level "
          f"after {args.warmup:g} s warm-up")
    print(f"  payload: {args.payload} ({body_bytes} bytes per request), {len(x)} images from {source}")
    print(f"  in-process Recognizer call on the same input: {baseline_ms:.3f} ms median")

    port = free_port()
    proc = start_server(args, port)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        health = run_level(base, "GET", "/api/health", None, 8, min(args.duration, 10.0), args.warmup)
        print(f"\nbaseline GET /api/health at concurrency 8: {health['req_per_s']:.0f} req/s, "
              f"p50 {health['p50_ms']} ms, p99 {health['p99_ms']} ms, errors {health['errors']}")
        print(f"\n{'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'accuracy':>9} {'vs health':>10}")
        for c in levels:
            r = run_level(base, "POST", "/api/predict", requests, c, args.duration, args.warmup)
            if y is not None and r["answers"]:
                correct = sum(1 for idx, d in r["answers"] if d == int(y[idx]))
                r["accuracy"] = round(correct / len(r["answers"]), 4)
            else:
                r["accuracy"] = None
            r["ratio_vs_health"] = round(r["req_per_s"] / max(health["req_per_s"], 1e-9), 3)
            del r["answers"]
            results.append(r)
            acc = f"{100 * r['accuracy']:.2f}%" if r["accuracy"] is not None else "n/a"
            print(f"{c:>5} {r['req_per_s']:>8.1f} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>7} {acc:>9} "
                  f"{r['ratio_vs_health']:>10.2f}")
            if r["first_error"]:
                print(f"      first error: {r['first_error']}")
    finally:
        stop_server(proc)

    at8 = next((r for r in results if r["concurrency"] == 8), None)
    if at8 is not None:
        met = at8["req_per_s"] >= 300 and at8["p99_ms"] is not None and at8["p99_ms"] <= 50 and at8["errors"] == 0
        print(f"\ngoal at concurrency 8 (>= 300 req/s, p99 <= 50 ms, 0 errors): {'met' if met else 'NOT met'}")
    print(json.dumps({
        "bench": "serve_load", "payload": args.payload, "workers": args.workers, "threads": args.threads,
        "runtime": args.runtime, "duration_s": args.duration, "commit": env["commit"],
        "in_process_ms": round(baseline_ms, 4),
        "health": {k: health[k] for k in ("concurrency", "req_per_s", "p50_ms", "p99_ms", "errors")},
        "levels": [{k: v for k, v in r.items() if k != "first_error"} for r in results],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
