"""Each endpoint on its real code path: the real Recognizer behind create_app, through TestClient."""

from __future__ import annotations

import base64
import io
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from digitlab import __version__
from serve_drawings import (
    SMALL_MAX_BYTES,
    SMALL_MAX_PIXELS,
    assert_error,
    digit_image,
    number_image,
    pixels28,
    png_bytes,
)


def _png(digit: str) -> bytes:
    return png_bytes(digit_image(digit))


def _check_prediction(body: dict) -> None:
    assert set(body) >= {"digit", "confidence", "probabilities", "unsure"}
    probs = body["probabilities"]
    assert len(probs) == 10 and abs(sum(probs) - 1.0) < 1e-4
    assert body["digit"] == int(np.argmax(probs))
    assert body["confidence"] == pytest.approx(max(probs))
    assert isinstance(body["unsure"], bool)


def test_health_names_model_metrics_and_version(client, recognizer):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["model"] == recognizer.info["name"]
    assert body["digitlab_version"] == __version__
    assert isinstance(body["metrics"], dict)


def test_model_info_includes_limits_and_threshold(client, recognizer):
    body = client.get("/api/model").json()
    assert body["name"] == recognizer.info["name"]
    assert body["limits"] == {"max_bytes": SMALL_MAX_BYTES, "max_pixels": SMALL_MAX_PIXELS}
    assert 0.0 < body["min_confidence"] < 1.0
    assert "metrics" in body and "digitlab_version" in body


def test_predict_multipart_vertical_stroke_is_one(client):
    r = client.post("/api/predict", files={"file": ("one.png", _png("1"), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    _check_prediction(body)
    assert body["digit"] == 1
    assert body["source"] == "one.png"
    assert not body.get("image")  # only on request


def test_both_answers_carry_the_file_name_and_decodes_note(client):
    buf = io.BytesIO()
    frames = [digit_image("1").convert("L"), Image.new("L", (64, 64), 0), Image.new("L", (64, 64), 128)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    for path in ("/api/predict", "/api/read"):
        r = client.post(path, files={"file": ("moving.gif", buf.getvalue(), "image/gif")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "moving.gif"
        assert "used the first frame" in body["note"]


def test_predict_agrees_with_the_recognizer_in_process(client, recognizer):
    data = _png("7")
    expected = recognizer.predict_one(data)
    body = client.post("/api/predict", files={"file": ("7.png", data, "image/png")}).json()
    assert body["digit"] == expected.digit
    np.testing.assert_allclose(body["probabilities"], expected.probabilities, atol=1e-6)


def test_image_query_returns_the_28x28_the_model_saw(client, recognizer):
    data = _png("7")
    body = client.post("/api/predict?image=true", files={"file": ("7.png", data, "image/png")}).json()
    saw = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    assert saw.format == "PNG" and saw.size == (28, 28)
    expected = recognizer.predict_one(data).image28
    np.testing.assert_allclose(np.asarray(saw.convert("L"), np.float32) / 255.0, expected, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_predict_json_base64_matches_multipart(client, prefix):
    data = _png("0")
    multipart = client.post("/api/predict", files={"file": ("0.png", data, "image/png")}).json()
    encoded = prefix + base64.b64encode(data).decode()
    body = client.post("/api/predict", json={"image": encoded, "include_image": True}).json()
    _check_prediction(body)
    assert body["digit"] == multipart["digit"]
    np.testing.assert_allclose(body["probabilities"], multipart["probabilities"], atol=1e-6)
    assert body["image"]  # include_image in the JSON body


def test_predict_raw_image_body(client):
    r = client.post("/api/predict", content=_png("1"), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json()["digit"] == 1


def test_predict_pixels_is_the_model_input_as_is(client, recognizer):
    x = pixels28("1")
    body = client.post("/api/predict", json={"pixels": x.tolist()}).json()
    _check_prediction(body)
    from digitlab.evaluate.temperature import apply_temperature

    # The model's own probabilities for the array as it is, reported calibrated as every answer is.
    expected = apply_temperature(recognizer.predict_batch28(x[None])[0], recognizer.temperature)
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    assert body["digit"] == 1


def test_predict_blank_pixels_is_no_digit_not_a_guess(client):
    body = client.post("/api/predict", json={"pixels": np.zeros((28, 28)).tolist()}).json()
    assert body["digit"] is None
    assert body["probabilities"] == []
    assert body["confidence"] == 0.0


def test_predict_blank_image_is_no_digit(client):
    blank = png_bytes(Image.new("L", (120, 120), 255))
    r = client.post("/api/predict", files={"file": ("blank.png", blank, "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["digit"] is None


def test_read_a_number(client):
    data = png_bytes(number_image("171"))
    r = client.post("/api/read?image=true", files={"file": ("171.png", data, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["number"] == "171"
    assert len(body["digits"]) == 3
    xs = [d["box"][0] for d in body["digits"]]
    assert xs == sorted(xs)  # left to right
    assert all(d.get("image") for d in body["digits"])
    assert 0.0 < body["confidence"] <= 1.0 and isinstance(body["unsure"], bool)


def test_read_refuses_a_single_digit_array(client):
    r = client.post("/api/read", json={"pixels": pixels28("1").tolist()})
    assert "single 28x28 digit" in assert_error(r, 422)["detail"]


def test_concurrent_requests_each_get_their_own_answer(client, recognizer):
    # Different inputs in flight at once: every answer must match its own input (no shared state).
    rng = np.random.default_rng(1)
    inputs = [np.clip(pixels28(d) * rng.uniform(0.6, 1.0), 0, 1) for d in "1707101771707011" * 2]
    from digitlab.evaluate.temperature import apply_temperature

    expected = apply_temperature(recognizer.predict_batch28(np.stack(inputs)), recognizer.temperature)

    def ask(x):
        return client.post("/api/predict", json={"pixels": x.tolist()}).json()["probabilities"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, inputs))
    np.testing.assert_allclose(np.array(answers), expected, atol=1e-6)


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<canvas" in page.text and "/static/app.js" in page.text and "/static/style.css" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no CDN: works offline
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "/api/predict" in js.text and "/api/read" in js.text
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "image-rendering: pixelated" in css.text


def test_openapi_and_docs_work_offline(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/png"} <= set(body)
    assert {"/api/read", "/api/health", "/api/model"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    pytest.importorskip("swagger_ui_bundle", reason="without swagger-ui-bundle /docs uses the CDN")
    assert "cdn." not in docs.text and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_model_loads_once_in_the_lifespan(test_model):
    from fastapi.testclient import TestClient

    from digitlab.serve.app import create_app

    app = create_app(model=test_model)
    assert app.state.recognizer is None  # nothing loaded at import or construction time
    assert_error(TestClient(app).get("/api/health"), 503)  # no lifespan run: not ready, still JSON
    with TestClient(app) as c:
        loaded = app.state.recognizer
        assert loaded is not None
        for _ in range(3):
            assert c.post("/api/predict", json={"pixels": pixels28("7").tolist()}).status_code == 200
        assert app.state.recognizer is loaded
