"""Load test of `digitlab serve`: requests/s and latency at several concurrency levels.

Goal (2 cores): >= 300 req/s with p99 <= 50 ms at concurrency 8, zero errors.

The bench starts the server as a subprocess on 127.0.0.1 (a free port), then fires requests from this
process (a separate process from the server) over keep-alive connections, for a fixed time per level,
with a minimal asyncio HTTP/1.1 client (--client httpx uses httpx.AsyncClient, which costs ~10x more
CPU per request: on 2 shared cores that CPU is taken from the server). The server's and the client's
CPU time per request are printed too: unlike req/s they do not depend on what else runs. Each request is one real MNIST test digit (the 28x28 JSON array by
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
import sys
import time

import numpy as np

from _server import REPO, free_port, start_server, stop_server


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
    p.add_argument("--client", choices=("raw", "httpx"), default="raw",
                   help="raw: minimal asyncio HTTP/1.1 keep-alive client (~10x less CPU per request than "
                        "httpx, which matters when client and server share 2 cores); httpx: httpx.AsyncClient")
    return p.parse_args(argv)


# -- payloads --------------------------------------------------------------------------------------

def load_digits(n: int):
    """(uint8 (n, 28, 28) white-on-black digits, labels or None, where they came from)."""
    shared = REPO.parent / "shared" / "data"
    if "DIGITLAB_DATA_DIR" not in os.environ and (shared / "mnist").is_dir():
        os.environ["DIGITLAB_DATA_DIR"] = str(shared)  # a developer's checkout sits beside shared/
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

def serve_args(args) -> list[str]:
    out = ["--workers", str(args.workers), "--threads", str(args.threads), "--runtime", args.runtime,
           "--no-access-log", "--log-level", "warning"]
    return out + (["--model", args.model] if args.model else [])


# -- the load --------------------------------------------------------------------------------------

class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: just enough for this server's answers
    (status line, headers, a Content-Length body). The load generator should cost little CPU."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close or not status_line:
            await self.close()
        return int(status_line.split()[1]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _load(base: str, method: str, path: str, requests, concurrency: int, duration: float, warmup: float,
                client_kind: str):
    latencies: list[float] = []
    answers: list[tuple[int, int | None]] = []   # (request index, digit answered)
    errors = {"count": 0, "first": None}
    total = {"n": 0}
    host, port = base.removeprefix("http://").split(":")
    if client_kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        shared = httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0)

        async def send(_conn, idx):
            if method == "GET":
                r = await shared.get(path)
            else:
                headers, body = requests[idx]
                r = await shared.post(path, content=body, headers=headers)
            return r.status_code, r.content
    else:
        shared = None

        async def send(conn, idx):
            headers, body = ({}, b"") if method == "GET" else requests[idx]
            return await conn.request(method, path, headers, body)

    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker(k: int):
        conn = RawConnection(host, int(port)) if client_kind == "raw" else None
        i = k
        try:
            while time.perf_counter() < stop_at:
                idx = i % len(requests) if requests else 0
                i += concurrency
                t0 = time.perf_counter()
                status, data, problem = 0, b"", None
                try:
                    status, data = await asyncio.wait_for(send(conn, idx), 30.0)
                    digit = json.loads(data).get("digit") if status == 200 and method == "POST" else None
                except Exception as exc:  # noqa: BLE001 - every failure is counted as an error
                    problem, digit = repr(exc), None
                    if conn is not None:
                        await conn.close()
                t1 = time.perf_counter()
                total["n"] += 1
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)
                    if status == 200:
                        answers.append((idx, digit))
                    else:
                        errors["count"] += 1
                        errors["first"] = errors["first"] or problem or f"HTTP {status}: {data[:200]!r}"
        finally:
            if conn is not None:
                await conn.close()

    try:
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    finally:
        if shared is not None:
            await shared.aclose()
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
        "total_requests": total["n"],
    }


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its children (uvicorn workers); Linux only.

    Wall-clock throughput depends on what else runs on the machine; CPU time per request does not, so
    it is printed beside req/s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_level(base, method, path, requests, concurrency, duration, warmup, server_pid, client_kind):
    """One level of load; adds the server's and this client's CPU ms per request (warm-up included)."""
    server0, client0 = process_tree_cpu_s(server_pid), time.process_time()
    result = asyncio.run(_load(base, method, path, requests, concurrency, duration, warmup, client_kind))
    server1, client1 = process_tree_cpu_s(server_pid), time.process_time()
    total = max(result.pop("total_requests"), 1)
    result["server_cpu_ms_per_req"] = round(1000 * (server1 - server0) / total, 3)
    result["client_cpu_ms_per_req"] = round(1000 * (client1 - client0) / total, 3)
    return result


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
    client = "minimal asyncio HTTP/1.1" if args.client == "raw" else "httpx.AsyncClient"
    print(f"  client: {client} in this process (not the server's), keep-alive, 127.0.0.1; {args.duration:g} s per level "
          f"after {args.warmup:g} s warm-up")
    print(f"  payload: {args.payload} ({body_bytes} bytes per request), {len(x)} images from {source}")
    print(f"  in-process Recognizer call on the same input: {baseline_ms:.3f} ms median")

    port = free_port()
    proc = start_server(port, serve_args(args))
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        health = run_level(base, "GET", "/api/health", None, 8, min(args.duration, 10.0), args.warmup, proc.pid,
                           args.client)
        print(f"\nbaseline GET /api/health at concurrency 8: {health['req_per_s']:.0f} req/s, "
              f"p50 {health['p50_ms']} ms, p99 {health['p99_ms']} ms, errors {health['errors']}, "
              f"server CPU {health['server_cpu_ms_per_req']} ms/req, client CPU {health['client_cpu_ms_per_req']} ms/req")
        print(f"\n{'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'accuracy':>9} {'vs health':>10}"
              f" {'server CPU ms/req':>18} {'client CPU ms/req':>18}")
        for c in levels:
            r = run_level(base, "POST", "/api/predict", requests, c, args.duration, args.warmup, proc.pid, args.client)
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
                  f"{r['ratio_vs_health']:>10.2f} {r['server_cpu_ms_per_req']:>18} {r['client_cpu_ms_per_req']:>18}")
            if r["first_error"]:
                print(f"      first error: {r['first_error']}")
    finally:
        stop_server(proc)

    at8 = next((r for r in results if r["concurrency"] == 8), None)
    if at8 is not None:
        met = at8["req_per_s"] >= 300 and at8["p99_ms"] is not None and at8["p99_ms"] <= 50 and at8["errors"] == 0
        print(f"\ngoal at concurrency 8 (>= 300 req/s, p99 <= 50 ms, 0 errors): {'met' if met else 'NOT met'}")
    print(json.dumps({
        "bench": "serve_load", "payload": args.payload, "client": args.client, "workers": args.workers, "threads": args.threads,
        "runtime": args.runtime, "duration_s": args.duration, "commit": env["commit"],
        "in_process_ms": round(baseline_ms, 4),
        "health": {k: health[k] for k in ("concurrency", "req_per_s", "p50_ms", "p99_ms", "errors",
                                          "server_cpu_ms_per_req", "client_cpu_ms_per_req")},
        "levels": [{k: v for k, v in r.items() if k != "first_error"} for r in results],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
