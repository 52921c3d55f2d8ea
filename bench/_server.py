"""Start and stop `digitlab serve` in a child process for the server benches (serve_load, hostile)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY_SECONDS = 180  # the first start imports torch and loads the model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, serve_args: list[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """`digitlab serve --port PORT *serve_args` in its own process group, returned once /api/health answers 200.

    The server's output goes to `log` when given (and its tail into the error when it fails to start),
    else to this process's. A server that exits or is not ready in READY_SECONDS ends the bench with one line.
    """
    import httpx

    cmd = [sys.executable, "-m", "digitlab", "serve", "--host", "127.0.0.1", "--port", str(port), *serve_args]
    output = log.open("wb") if log is not None else None
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT if log else None,
                            start_new_session=True)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    exited = proc.poll()
    stop_server(proc)
    why = f"exited with {exited}" if exited is not None else f"was not ready in {READY_SECONDS} s"
    tail = f": {log.read_text(errors='replace')[-2000:]}" if log is not None else ""
    raise SystemExit(f"the server {why}{tail}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
