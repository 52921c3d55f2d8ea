"""Start `digitlab serve` as a real subprocess on a free 127.0.0.1 port, and always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(*args: str, log_name: str = "server.log", ready_timeout: float = 120.0):
    """Yield the base URL of a running `digitlab serve` (the shipped model unless
    $DIGITLAB_SERVE_TEST_MODEL names another); its output goes to test-output/e2e/<log_name>."""
    port = free_port()
    cmd = [sys.executable, "-m", "digitlab", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    model = os.environ.get("DIGITLAB_SERVE_TEST_MODEL")
    if model and "--model" not in args:
        cmd += ["--model", model]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log_path = OUTPUT / log_name
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        # Its own process group, so uvicorn's worker processes (--workers N) are stopped with it.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            _wait_ready(proc, base, ready_timeout, log_path)
            yield base
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen, base: str, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"digitlab serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/api/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"digitlab serve not ready after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    else:
        # The group may still hold workers if the main process died first.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
