"""Hostile inputs against `digitlab predict`, `digitlab read` and `digitlab serve`.

Goal: every input answered or refused cleanly (one line, or a 4xx), 0 5xx, 0 tracebacks, Ghostscript
never run, and a server peak RSS under 1 GB while 8 clients upload a 40-megapixel transparent PNG at
once (its memory given back afterwards). The baseline, measured in the same run, is the server's RSS
when idle after one ordinary request.

The corpus: files in formats that are not accepted (EPS with a fake `gs` on PATH that records any run,
PDF, PSD, ICO), text and random bytes named .png, empty and truncated files, headers declaring
30000x30000 pixels, 16-bit, float, CMYK, palette and 1-bit images, a 300-frame GIF, a 40 MP RGBA PNG and
a 40 MP JPEG; for the CLI also /dev/zero, a named pipe, a dangling link and a folder named x.png; for
the server also malformed bodies, wrong types and a client that stalls mid-body.

    python bench/hostile.py
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from _common import setup_lines
from _server import REPO, free_port, start_server, stop_server

GOAL_PEAK_MIB = 1024


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--big-side", type=int, default=6300, help="side of the big RGBA PNG (6300: 40 MP)")
    p.add_argument("--concurrent", type=int, default=8, help="simultaneous big uploads")
    p.add_argument("--cli-timeout", type=float, default=120.0, help="seconds before a CLI run counts as a hang")
    return p.parse_args(argv)


# -- the corpus ------------------------------------------------------------------------------------

def _encode(image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def _digit(mode: str = "L", side: int = 120):
    from PIL import Image, ImageDraw

    image = Image.new("L", (side, side), 255)
    ImageDraw.Draw(image).line([(side * .3, side * .2), (side * .7, side * .2), (side * .4, side * .8)], fill=0,
                               width=max(3, side // 15))
    return image.convert(mode)


def corpus(big_side: int) -> dict[str, bytes]:
    """name -> bytes of every hostile (or odd but valid) file."""
    from PIL import Image

    rng = np.random.default_rng(0)
    png = _encode(_digit(), "PNG")
    jpeg = _encode(_digit("RGB", 400), "JPEG")
    big = Image.new("RGBA", (big_side, big_side), (0, 0, 0, 0))
    big.paste(_digit("RGBA", big_side // 2), (big_side // 4, big_side // 4))
    frames = [_digit("P", 64)] + [Image.new("P", (64, 64), k % 200) for k in range(1, 300)]
    grey16 = (np.asarray(_digit(), np.uint16) * 257).astype(">u2")
    tiff_16 = Image.frombytes("I;16B", grey16.shape[::-1], grey16.tobytes())
    return {
        "eps-as.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "pdf-as.png": b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
        "psd-as.png": b"8BPS\x00\x01" + bytes(40),
        "ico-as.png": b"\x00\x00\x01\x00\x01\x00" + bytes(40),
        "text.png": b"these are my notes\n" * 50,
        "random.png": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "png-header-30000x30000.png": _png_header(30000, 30000),
        "png-header-0x0.png": _png_header(0, 0),
        "bmp-header-huge.bmp": b"BM" + bytes(8) + (54).to_bytes(4, "little") + (40).to_bytes(4, "little")
                               + (100000).to_bytes(4, "little") + (100000).to_bytes(4, "little") + bytes(28),
        "16-bit-big-endian.tif": _encode(tiff_16, "TIFF"),
        "float.tif": _encode(Image.fromarray(np.asarray(_digit(), np.float32) / 255), "TIFF"),
        "cmyk.jpg": _encode(_digit("CMYK"), "JPEG"),
        "one-bit.png": _encode(_digit("1"), "PNG"),
        "la.png": _encode(_digit("LA"), "PNG"),
        "palette-transparent.png": _encode(_digit("P"), "PNG", transparency=0),
        "gif-300-frames.gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp-truncated.webp": _encode(_digit("RGB"), "WEBP")[:40],
        f"rgba-{big_side}x{big_side}.png": _encode(big, "PNG"),
        "jpeg-40mp.jpg": _encode(_digit("RGB", 400).resize((7300, 5500)), "JPEG", quality=60),
    }


# -- the CLI ---------------------------------------------------------------------------------------

def fake_ghostscript(folder: Path) -> tuple[dict, Path]:
    """An environment whose PATH starts with a `gs` that only records that it ran."""
    marker = folder / "gs-ran"
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    gs.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    return env, marker


def run_cli(command: str, inputs: list[str], env: dict, timeout: float) -> dict:
    """One `digitlab COMMAND --json inputs...` run: which inputs were answered, refused, or neither."""
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "digitlab", command, "--json", *inputs], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"command": command, "tried": len(inputs), "hang": True, "refused": 0, "answered": 0, "tracebacks": 0}
    refused = {line.split(": ", 2)[1] for line in done.stderr.splitlines() if line.startswith(f"digitlab {command}: ")}
    answered = sum(1 for line in done.stdout.splitlines() if line.startswith("{") and json.loads(line).get("error") is None)
    return {"command": command, "tried": len(inputs), "hang": False, "exit": done.returncode,
            "answered": answered, "refused": len(refused & set(inputs)), "tracebacks": done.stderr.count("Traceback"),
            "seconds": round(time.perf_counter() - started, 2)}


def cli_inputs(folder: Path, files: dict[str, bytes]) -> list[str]:
    special = folder / "special"
    special.mkdir()
    os.mkfifo(special / "pipe.png")
    (special / "folder.png").mkdir()
    (special / "dangling.png").symlink_to(special / "gone.png")
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    return paths + ["/dev/zero", str(special / "pipe.png"), str(special / "dangling.png"), str(special)]


# -- the server ------------------------------------------------------------------------------------

def rss_mib(pid: int) -> dict[str, float]:
    """The process's current (VmRSS) and peak (VmHWM) resident memory, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def http_requests(files: dict[str, bytes]) -> list[tuple[str, dict]]:
    """(name, httpx request arguments) for every file three ways, and malformed bodies."""
    out = []
    for name, data in files.items():
        out += [(f"{name} multipart", {"files": {"file": (name, data, "image/png")}}),
                (f"{name} raw", {"content": data, "headers": {"content-type": "image/png"}}),
                (f"{name} base64", {"json": {"image": base64.b64encode(data).decode()}})]
    out += [
        ("json not an object", {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}),
        ("json broken", {"content": b"{\"image\": ", "headers": {"content-type": "application/json"}}),
        ("json NaN pixels", {"content": b"{\"pixels\": [[NaN]]}", "headers": {"content-type": "application/json"}}),
        ("pixels 28x27", {"json": {"pixels": [[0.0] * 27] * 28}}),
        ("pixels strings", {"json": {"pixels": [["a"] * 28] * 28}}),
        ("base64 garbage", {"json": {"image": "!!!"}}),
        ("unknown field", {"json": {"picture": "x"}}),
        ("multipart no boundary", {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}),
        ("multipart text part", {"files": {"file": ("a.txt", b"hi", "text/plain")}}),
        ("content-type text", {"content": b"hi", "headers": {"content-type": "text/plain"}}),
        ("no content-type", {"content": b"hi"}),
    ]
    return out


def stalled_body(port: int) -> int:
    """A client that declares 1000 bytes, sends 10 and waits: the status it gets, 0 when none."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 1000\r\n\r\n" + bytes(10))
        answer = sock.recv(65536).decode("latin-1")
    return int(answer.split()[1]) if answer.startswith("HTTP/1.1") else 0


def serve_phase(port: int, pid: int, files: dict[str, bytes], big_name: str, concurrent: int) -> dict:
    import httpx

    base = f"http://127.0.0.1:{port}"
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        client.post("/api/predict", files={"file": ("ok.png", _encode(_digit(), "PNG"), "image/png")})
        idle = rss_mib(pid)["rss"]
        for name, kwargs in http_requests(files):
            statuses[name] = client.post("/api/predict", **kwargs).status_code
            statuses[name + " /api/read"] = client.post("/api/read", **kwargs).status_code
    statuses["stalled body"] = stalled_body(port)

    def upload(_):
        with httpx.Client(base_url=base, timeout=300) as client:
            return client.post("/api/predict", files={"file": (big_name, files[big_name], "image/png")}).status_code

    before = rss_mib(pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        big = list(pool.map(upload, range(concurrent)))
    seconds = time.perf_counter() - started
    time.sleep(1.0)
    after = rss_mib(pid)
    return {"statuses": statuses, "idle_rss_mib": idle, "peak_before_big_mib": before["peak"], "big_statuses": big,
            "big_seconds": seconds, "peak_rss_mib": after["peak"], "rss_after_big_mib": after["rss"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_lines()
    with tempfile.TemporaryDirectory(prefix="digitlab-hostile-") as tmp:
        folder = Path(tmp)
        env, marker = fake_ghostscript(folder)
        files = corpus(args.big_side)
        big_name = f"rgba-{args.big_side}x{args.big_side}.png"
        inputs = cli_inputs(folder, files)
        print(f"corpus: {len(files)} files, {len(inputs)} CLI inputs; big upload {big_name} "
              f"({len(files[big_name]):,} bytes)")
        cli = [run_cli(command, inputs, env, args.cli_timeout) for command in ("predict", "read")]
        for run in cli:
            print(f"cli {run['command']}: {run}")
        port = free_port()
        log = folder / "server.log"
        proc = start_server(port, ["--no-access-log", "--body-timeout", "2"], env=env, log=log)
        try:
            served = serve_phase(port, proc.pid, files, big_name, args.concurrent)
        finally:
            stop_server(proc)
        server_log = log.read_text(errors="replace")
        gs_runs = len(marker.read_text().splitlines()) if marker.exists() else 0
    codes = list(served["statuses"].values()) + served["big_statuses"]
    http_5xx = sum(code >= 500 for code in codes)
    refused_http = sum(400 <= code < 500 for code in codes)
    tracebacks = sum(run["tracebacks"] for run in cli) + server_log.count("Traceback")
    for name, code in served["statuses"].items():
        if code >= 500 or code == 0:
            print(f"  {code}  {name}")
    print(f"server: {len(codes)} requests, {refused_http} refused (4xx), {http_5xx} 5xx, stalled body -> "
          f"{served['statuses']['stalled body']}; {args.concurrent} concurrent {big_name} uploads -> "
          f"{sorted(set(served['big_statuses']))} in {served['big_seconds']:.1f} s")
    print(f"server RSS: idle {served['idle_rss_mib']:.0f} MiB (baseline), peak {served['peak_rss_mib']:.0f} MiB, "
          f"after the big uploads {served['rss_after_big_mib']:.0f} MiB")
    hangs = sum(run["hang"] for run in cli)
    met = (http_5xx == 0 and tracebacks == 0 and gs_runs == 0 and hangs == 0
           and served["peak_rss_mib"] < GOAL_PEAK_MIB and set(served["big_statuses"]) == {200})
    print(f"goal (0 5xx, 0 tracebacks, gs never run, no hang, peak RSS < {GOAL_PEAK_MIB} MiB): "
          f"{'met' if met else 'NOT met'}")
    result = {
        "bench": "hostile", "inputs_tried": sum(run["tried"] for run in cli) + len(codes),
        "cli": cli, "http_requests": len(codes), "refused_cleanly": sum(run["refused"] for run in cli) + refused_http,
        "http_5xx": http_5xx, "tracebacks": tracebacks, "ghostscript_runs": gs_runs, "cli_hangs": hangs,
        "stalled_body_status": served["statuses"]["stalled body"], "big_uploads": args.concurrent,
        "big_upload_statuses": served["big_statuses"], "big_upload_seconds": round(served["big_seconds"], 2),
        "idle_rss_mib": round(served["idle_rss_mib"], 1), "peak_rss_mib": round(served["peak_rss_mib"], 1),
        "rss_after_big_mib": round(served["rss_after_big_mib"], 1), "goal_met": met,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
