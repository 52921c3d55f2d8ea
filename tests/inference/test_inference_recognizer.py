"""Recognizer on a real saved model (a seeded, untrained mlp: the mechanics, not the accuracy)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from digitlab.errors import ConfigError, ImageError, ModelError
from digitlab.inference.recognizer import Prediction, Recognizer
from inference_helpers import encode, ring_digit


@pytest.fixture(scope="module")
def rec(mlp_run):
    return Recognizer.load(mlp_run)


def test_info_describes_the_model(rec, mlp_run):
    assert rec.info["architecture"] == "mlp" and rec.info["runtime"] == "torch"
    assert rec.info["test_accuracy"] == 0.1 and rec.info["path"] == str(mlp_run)
    assert rec.classes == [str(i) for i in range(10)]


def test_predict_takes_every_kind_of_input_and_keeps_order(rec, images):
    ring = ring_digit(120)
    inputs = [images["ring.png"], str(images["ring.jpg"]), images["ring.png"].read_bytes(),
              Image.fromarray(ring), ring, images["empty.png"], images["notes.png"]]
    out = rec.predict(inputs)
    assert len(out) == len(inputs)
    assert out[0].source == str(images["ring.png"]) and out[2].source is None
    for p in out[:5]:
        assert p.error is None and p.digit is not None and p.image28.shape == (28, 28)
        assert len(p.probabilities) == 10 and abs(sum(p.probabilities) - 1) < 1e-5
        assert p.confidence == max(p.probabilities) and p.digit == int(np.argmax(p.probabilities))
    assert out[0].digit == out[2].digit and out[0].probabilities == pytest.approx(out[2].probabilities, abs=1e-6)
    assert "empty" in out[5].error and "not an image" in out[6].error
    assert out[5].digit is None and out[5].confidence == 0.0 and out[5].probabilities == ()


def test_probabilities_are_the_models_on_what_it_saw(rec, images):
    p = rec.predict_one(images["ring.png"])
    direct = rec.predict_batch28(p.image28[None])[0]
    assert np.allclose(direct, p.probabilities, atol=1e-6)
    assert p.top(3) == sorted(p.top(3), key=lambda t: -t[1]) and p.top(3)[0] == (p.digit, p.confidence)


def test_predict_one_raises_on_undecodable_input(rec, images):
    with pytest.raises(ImageError, match="truncated"):
        rec.predict_one(images["truncated.png"])


def test_unsure_follows_min_confidence(mlp_run, images):
    strict = Recognizer.load(mlp_run, min_confidence=1.0).predict_one(images["ring.png"])
    lenient = Recognizer.load(mlp_run, min_confidence=0.0).predict_one(images["ring.png"])
    assert strict.unsure and not lenient.unsure


def test_blank_and_noise_images_say_no_digit(rec):
    blank = np.full((200, 200), 235, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    for arr, words in ((blank, "blank"), (noise, "noise")):
        p = rec.predict_one(arr)
        assert p.digit is None and p.error is None and p.image28 is None
        assert p.note.startswith("no digit found") and words in p.note


def test_animated_gif_note_reaches_the_prediction(rec):
    frames = [Image.fromarray(ring_digit(64)), Image.new("L", (64, 64), 0)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert rec.predict_one(data).note == "animated GIF with 2 frames: used the first frame"


def test_to_dict_is_json_with_the_image_as_png(rec, images):
    p = rec.predict_one(images["ring.png"])
    d = json.loads(json.dumps(p.to_dict(include_image=True)))
    assert d["digit"] == p.digit and len(d["top"]) == 3 and d["error"] is None
    png = Image.open(io.BytesIO(base64.b64decode(d["image"])))
    assert png.size == (28, 28) and np.abs(np.asarray(png) / 255 - p.image28).max() < 0.01
    assert "image" not in p.to_dict()


def test_predict_batch28_checks_its_shape(rec):
    assert rec.predict_batch28(np.zeros((3, 28, 28), np.float32)).shape == (3, 10)
    assert rec.predict_batch28(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)
    with pytest.raises(ConfigError, match="shaped"):
        rec.predict_batch28(np.zeros((3, 32, 32), np.float32))


def test_read_orders_digits_left_to_right_with_boxes_in_input_pixels(rec):
    canvas = np.full((120, 400), 255, np.uint8)
    for k, x in enumerate((40, 160, 280)):
        canvas[20:100, x : x + 60] = ring_digit(80, radius=0.3, width=0.1)[:, 10:70]
    reading = rec.read(canvas)
    assert len(reading.digits) == 3 and len(reading.number) == 3
    xs = [b[0] for b in reading.boxes]
    assert xs == sorted(xs) and all(abs(b[0] - x) <= 12 for b, x in zip(reading.boxes, (40, 160, 280)))
    assert all(15 <= b[1] <= 35 and 85 <= b[3] <= 105 for b in reading.boxes)
    assert reading.confidence == pytest.approx(np.prod([d.confidence for d in reading.digits]))
    json.dumps(reading.to_dict(include_images=True))


def test_read_classifies_once_and_reports_what_the_segmentation_read(rec, monkeypatch):
    from digitlab.evaluate.temperature import apply_temperature

    canvas = np.full((120, 280), 255, np.uint8)
    for x in (40, 160):
        canvas[20:100, x : x + 60] = ring_digit(80, radius=0.3, width=0.1)[:, 10:70]
    calls = []
    original = rec.predict_batch28

    def counted(x28):
        calls.append(len(x28))
        return original(x28)

    monkeypatch.setattr(rec, "predict_batch28", counted)
    reading = rec.read(canvas)
    assert len(calls) == 1 and len(reading.digits) == 2  # all candidates in one batch, nothing twice
    for digit in reading.digits:  # each digit's image and probabilities are its segment's own
        assert digit.image28.shape == (28, 28)
        expected = apply_temperature(original(digit.image28[None])[0], rec.temperature)
        np.testing.assert_allclose(digit.probabilities, expected, rtol=1e-5, atol=1e-6)


def test_read_of_a_blank_image_is_empty(rec):
    reading = rec.read(np.full((50, 200), 250, np.uint8))
    assert reading.number == "" and reading.digits == () and reading.unsure


def test_load_errors(tmp_path, mlp_run):
    with pytest.raises(ConfigError, match="unknown runtime"):
        Recognizer.load(mlp_run, runtime="tensorflow")
    with pytest.raises(ModelError, match="model not found"):
        Recognizer.load(tmp_path / "missing")
    with pytest.raises(ModelError, match="ONNX model not found"):
        Recognizer.load(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="min_confidence"):
        Recognizer.load(mlp_run, min_confidence=1.5)


def test_default_is_the_shipped_model_or_a_clear_error():
    from digitlab.models.storage import pretrained_path

    if (pretrained_path() / "model.json").exists():
        assert Recognizer.load().info["path"] == str(pretrained_path())
    else:
        with pytest.raises(ModelError, match="no pretrained model ships"):
            Recognizer.load()


def test_prediction_of_a_failed_input_is_unsure_and_empty():
    p = Prediction("x.png", None, 0.0, (), True, None, error="broken")
    assert p.top(3) == [] and p.to_dict()["top"] == []


def test_predict_on_one_missing_file_raises(rec, tmp_path):
    missing = tmp_path / "no-such.png"
    with pytest.raises(ImageError, match="no such file"):
        rec.predict(str(missing))
    # In a list, the batch goes on past it: the failure is that item's `error`.
    (p,) = rec.predict([str(missing)])
    assert p.digit is None and "no such file" in p.error


def test_reprs_are_short(rec, images):
    p = rec.predict_one(images["ring.png"])
    text = repr(p)
    assert len(text) < 200 and f"digit={p.digit}" in text and "image28" not in text
    failed = rec.predict([images["notes.png"]])[0]
    assert "error=" in repr(failed)
    reading = rec.read(images["ring.png"])
    assert len(repr(reading)) < 200 and f"number={reading.number!r}" in repr(reading)
