"""Bad and hostile input: every case gets its 4xx in the one JSON error shape, never a 500, and the
server still answers a health check afterwards."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from serve_drawings import SMALL_MAX_BYTES, assert_error, digit_image, noisy_png, png_bomb, png_bytes

GOOD_PNG = png_bytes(digit_image("7"))
TRUNCATED_PNG = noisy_png()[: len(noisy_png()) // 2]


def _file(data: bytes, name: str = "upload.png", kind: str = "image/png") -> dict:
    return {"files": {"file": (name, data, kind)}}


def _json_text(text: str) -> dict:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def _pixels(value) -> dict:
    return {"json": {"pixels": value}}


ZEROS = np.zeros((28, 28)).tolist()

# (case id, keyword arguments for client.post("/api/predict", ...), status, words the detail must contain)
HOSTILE = [
    ("truncated-png", _file(TRUNCATED_PNG), 422, "truncated"),
    ("png-bomb-30000x30000", _file(png_bomb(30000, 30000)), 413, "too large"),
    ("png-over-max-pixels", _file(png_bomb(3000, 3000)), 413, "3000x3000"),
    ("zero-byte-file", _file(b""), 422, "empty"),
    ("text-sent-as-png", _file(b"hello, I am a text file\n" * 20, "note.png"), 422, "not an image"),
    ("raw-text-body-as-png", {"content": b"GIF89a but not really", "headers": {"content-type": "image/png"}},
     422, "not an image"),
    ("huge-json-array-over-limit", _pixels(np.zeros((1000, 1000), np.uint8).tolist()), 413, "limit"),
    ("huge-json-array-under-limit", _pixels(np.zeros((300, 300), np.uint8).tolist()), 422, "300 rows of 300"),
    ("array-28x27", _pixels(np.zeros((28, 27)).tolist()), 422, "28 rows of 28"),
    ("array-flat-784", _pixels([0.0] * 784), 422, "28 rows of 28"),
    ("array-28x28x1", _pixels(np.zeros((28, 28, 1)).tolist()), 422, "only numbers"),
    ("array-ragged", _pixels([[0.0] * 28] * 27 + [[0.0] * 27]), 422, "28 rows of 28"),
    ("array-nan", _json_text('{"pixels": [' + ",".join(["[" + ",".join(["NaN"] * 28) + "]"] * 28) + "]}"),
     422, "NaN"),
    ("array-infinity", _json_text('{"pixels": [' + ",".join(["[" + ",".join(["0"] * 27 + ["Infinity"]) + "]"] * 28)
                                  + "]}"), 422, "finite"),
    ("array-negative", _pixels((np.zeros((28, 28)) - 0.5).tolist()), 422, "[0, 1]"),
    ("array-0-255-scale", _pixels(np.full((28, 28), 255).tolist()), 422, "divide 0-255"),
    ("array-strings", _pixels([["0"] * 28] * 28), 422, "only numbers"),
    ("array-booleans", _pixels([[True] * 28] * 28), 422, "only numbers"),
    ("array-nulls", _pixels([[None] * 28] * 28), 422, "only numbers"),
    ("pixels-a-string", _pixels("a picture of a seven"), 422, "28 rows of 28"),
    ("base64-invalid", {"json": {"image": "this is not base64!!"}}, 422, "base64"),
    ("base64-of-text", {"json": {"image": base64.b64encode(b"plain text, no image").decode()}}, 422, "not an image"),
    ("base64-empty", {"json": {"image": ""}}, 422, "empty"),
    ("base64-truncated-png", {"json": {"image": base64.b64encode(TRUNCATED_PNG).decode()}}, 422, "truncated"),
    ("image-a-number", {"json": {"image": 12345}}, 422, "base64 string"),
    ("json-top-level-array", {"json": [1, 2, 3]}, 422, "must be an object"),
    ("json-syntax-error", _json_text('{"pixels": [[0, 0, '), 422, "not valid JSON"),
    ("json-not-utf8", {"content": b'{"image": "\xff\xfe"}', "headers": {"content-type": "application/json"}},
     422, "not valid JSON"),
    ("json-unknown-field", {"json": {"imgae": "abc"}}, 422, "unknown field"),
    ("json-both-fields", {"json": {"image": base64.b64encode(GOOD_PNG).decode(), "pixels": ZEROS}}, 422,
     "exactly one"),
    ("json-no-field", {"json": {}}, 422, "exactly one"),
    ("include-image-not-bool", {"json": {"pixels": ZEROS, "include_image": "yes"}}, 422, "true or false"),
    ("multipart-no-file", {"content": b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--B--\r\n',
                           "headers": {"content-type": "multipart/form-data; boundary=B"}}, 422, "no file"),
    ("multipart-two-files", {"files": [("file", ("a.png", GOOD_PNG, "image/png")),
                                       ("file", ("b.png", GOOD_PNG, "image/png"))]}, 422, "multipart"),
    ("multipart-no-boundary", {"content": b"--x\r\n\r\n", "headers": {"content-type": "multipart/form-data"}},
     422, "multipart"),
    ("upload-declared-text", _file(b"hello", "notes.txt", "text/plain"), 415, "not an image"),
    ("upload-declared-pdf", _file(b"%PDF-1.4", "scan.pdf", "application/pdf"), 415, "not an image"),
    ("body-text-plain", {"content": b"7", "headers": {"content-type": "text/plain"}}, 415, "not supported"),
    ("body-xml", {"content": b"<digit>7</digit>", "headers": {"content-type": "application/xml"}}, 415,
     "not supported"),
    ("body-no-content-type", {"content": GOOD_PNG}, 415, "no Content-Type"),
    ("content-length-too-large", {"content": GOOD_PNG, "headers": {"content-type": "image/png",
                                                                   "content-length": str(10**9)}}, 413, "limit"),
]


@pytest.mark.parametrize("case, kwargs, status, words", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_input_gets_a_clear_4xx_and_the_server_stays_up(client, case, kwargs, status, words):
    if case == "body-no-content-type":
        # httpx adds no Content-Type to raw content; make sure that holds, or the case tests nothing.
        assert "content-type" not in client.build_request("POST", "/api/predict", **kwargs).headers
    body = assert_error(client.post("/api/predict", **kwargs), status)
    assert words.lower() in body["detail"].lower(), body
    assert client.get("/api/health").json()["status"] == "ok"


def test_at_least_ten_hostile_uploads_are_covered():
    assert len(HOSTILE) >= 10


def test_read_refuses_the_same_hostile_uploads(client):
    for case, kwargs, status, _ in HOSTILE:
        r = client.post("/api/read", **kwargs)
        if case.startswith(("array-", "huge-json-array-under", "pixels-", "include-image")):
            assert r.status_code == 422, (case, r.text)  # read takes no pixel arrays
        else:
            assert_error(r, status)
    assert client.get("/api/health").status_code == 200


def test_streamed_body_is_cut_off_at_the_limit(app):
    # A chunked body (no Content-Length) of 64 MB, driven through the ASGI app itself: the bytes are
    # counted as they arrive and the app stops asking for more right after the limit.
    import anyio

    chunk = 64 * 1024
    received = {"bytes": 0}
    sent: list[dict] = []

    async def receive():
        received["bytes"] += chunk
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": received["bytes"] < 64 * 2**20}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"test"), (b"content-type", b"image/png"),
                                          (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    anyio.run(app, scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert b"payload too large" in b"".join(m.get("body", b"") for m in sent[1:])
    assert received["bytes"] <= SMALL_MAX_BYTES + chunk


def test_framework_errors_use_the_same_shape(client):
    assert "/docs" in assert_error(client.get("/api/nothing-here"), 404)["detail"]
    assert "GET" in assert_error(client.get("/api/predict"), 405)["detail"]
    assert "image" in assert_error(client.post("/api/predict?image=maybe", json={"pixels": ZEROS}), 422)["detail"]


def test_bad_limits_are_refused_when_the_app_is_built(recognizer):
    from digitlab.errors import ConfigError
    from digitlab.serve.app import create_app

    with pytest.raises(ConfigError, match="max_bytes"):
        create_app(recognizer=recognizer, max_bytes=10)
    with pytest.raises(ConfigError, match="max_pixels"):
        create_app(recognizer=recognizer, max_pixels=0)
    with pytest.raises(ConfigError, match="min_confidence"):
        create_app(recognizer=recognizer, min_confidence=1.5)


def test_error_bodies_are_json_even_for_odd_json_text(client):
    # A JSON number, string and null at the top level: all refused as "must be an object".
    for text in ("7", '"seven"', "null"):
        assert "object" in assert_error(client.post("/api/predict", **_json_text(text)), 422)["detail"]
