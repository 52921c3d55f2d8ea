"""The API against hostile uploads: a file decode refuses is a 422 with its reason, a slow body is cut
off, big decodes wait for a slot, and the model's path on disk is not shown."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\nshowpage\n"


def ppm() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (30, 30), 255).save(buf, format="PPM")
    return buf.getvalue()


# Which formats decode refuses, and that Ghostscript never runs, is tested at the inference layer
# (tests/inference/test_inference_decode.py); here: its refusal reaches the client as a 422 with its reason.
@pytest.mark.parametrize("body, reason", [(EPS, "EPS"), (ppm(), "not an image digitlab reads")], ids=["eps", "ppm"])
def test_a_format_decode_refuses_is_a_422_with_its_reason(client, body, reason):
    for kwargs in ({"files": {"file": ("x.png", body, "image/png")}},
                   {"content": body, "headers": {"content-type": "image/png"}}):
        for path in ("/api/predict", "/api/read"):
            r = client.post(path, **kwargs)
            assert r.status_code == 422, r.text
            assert reason in r.json()["detail"]


def test_model_info_names_the_model_without_its_path(client):
    info = client.get("/api/model").json()
    assert info["name"] and "path" not in info
    assert "/" not in str(info["name"])


def test_a_body_that_stops_arriving_gets_408():
    from starlette.requests import Request

    from digitlab.serve.errors import ApiError
    from digitlab.serve.limits import read_body

    async def stalled():
        async def receive():
            if not sent:
                sent.append(1)
                return {"type": "http.request", "body": b"x" * 10, "more_body": True}
            await asyncio.sleep(3600)  # the client never sends the rest

        sent: list = []
        scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"1000")]}
        return await read_body(Request(scope, receive), 10_000, timeout=0.2)

    with pytest.raises(ApiError) as exc:
        asyncio.run(stalled())
    assert exc.value.status == 408 and "10 bytes came" in exc.value.detail


def test_decode_gate_bounds_big_decodes_and_lets_small_ones_through():
    import threading
    import time

    from digitlab.serve.memory import DecodeGate

    gate = DecodeGate(slots=2, big_pixels=100)
    inside, most = [0], [0]
    lock = threading.Lock()

    def decode(pixels):
        big = int(pixels > 100)
        with gate.decoding(pixels):
            with lock:
                inside[0] += big
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= big

    threads = [threading.Thread(target=decode, args=(1000,)) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    started = time.perf_counter()
    decode(10)  # small: does not wait for a slot
    assert time.perf_counter() - started < 0.1
    for t in threads:
        t.join()
    assert most[0] == 2  # two big decodes at once, never more
