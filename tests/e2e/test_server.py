"""`digitlab serve` as a real process: limits enforced on the socket, concurrency, several workers."""

from __future__ import annotations

import socket
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from serve_process import serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")


@pytest.fixture(scope="module")
def server():
    with serve("--no-access-log", "--max-bytes", "100000", log_name="server-api.log") as base:
        yield base


def _digit_pixels(rng) -> list:
    # A random stroke drawn into a 28x28 field: distinct inputs with distinct answers.
    x = np.zeros((28, 28), np.float32)
    r0, c0, r1, c1 = rng.integers(5, 23, 4)
    for t in np.linspace(0, 1, 40):
        r, c = int(round(r0 + t * (r1 - r0))), int(round(c0 + t * (c1 - c0)))
        x[max(0, r - 1): r + 2, max(0, c - 1): c + 2] = 1.0
    return x.tolist()


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG (signature, IHDR with valid CRC, IEND) declaring width x height pixels."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_huge_content_length_is_refused_before_the_body_is_sent(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        start = time.perf_counter()
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")  # ... and never send the gigabyte
        answer = b""
        while b"}" not in answer:  # the headers and the JSON body may come in separate packets
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        elapsed = time.perf_counter() - start
        answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"error":"payload too large"' in answer
    assert elapsed < 5.0
    assert httpx.get(server + "/api/health").json()["status"] == "ok"


def test_concurrent_requests_are_answered_correctly(server):
    rng = np.random.default_rng(0)
    inputs = [_digit_pixels(rng) for _ in range(48)]
    with httpx.Client(base_url=server, timeout=30) as client:
        sequential = [client.post("/api/predict", json={"pixels": x}).json() for x in inputs]

    def ask(x):
        with httpx.Client(base_url=server, timeout=30) as client:
            return client.post("/api/predict", json={"pixels": x}).json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(ask, inputs))
    for a, b in zip(sequential, concurrent):
        assert a["digit"] == b["digit"]
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-6)


def test_hostile_uploads_leave_the_real_server_up(server):
    with httpx.Client(base_url=server, timeout=30) as client:
        bomb = _png_header(30000, 30000)
        for kwargs, status in [
            ({"files": {"file": ("bomb.png", bomb, "image/png")}}, 413),
            ({"files": {"file": ("empty.png", b"", "image/png")}}, 422),
            ({"content": b"x" * 200_000, "headers": {"content-type": "image/png"}}, 413),
            ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        ]:
            r = client.post("/api/predict", **kwargs)
            assert r.status_code == status, r.text
            assert set(r.json()) == {"error", "detail"}
            assert client.get("/api/health").status_code == 200


def test_several_workers_serve_the_api():
    with serve("--workers", "2", "--no-access-log", log_name="server-workers.log") as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            info = client.get("/api/model").json()
            assert info["name"]
            answers = [client.post("/api/predict", json={"pixels": np.eye(28).tolist()}).json() for _ in range(8)]
        assert len({a["digit"] for a in answers}) == 1  # every worker runs the same model
