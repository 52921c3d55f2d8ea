"""The blocking work behind each endpoint: decode, preprocess, run the model, shape the JSON.

predict_image and read_image run in the threadpool (see app.py); pixels_result only shapes the answer
of the batched model call. They only read the shared Recognizer, so any number of them can run at once
without a lock. Each returns a JSON-ready dict or raises ApiError / ImageError.
"""

from __future__ import annotations

import numpy as np

from digitlab import __version__
from digitlab.errors import ImageError
from digitlab.evaluate.temperature import apply_temperature
from digitlab.inference.decode import header_pixels, load_image
from digitlab.inference.limits import DEFAULT_MAX_PIXELS
from digitlab.inference.recognizer import Prediction, Recognizer
from digitlab.serve.errors import ApiError
from digitlab.serve.limits import ServeLimits
from digitlab.serve.memory import DECODE_GATE


def load_recognizer(model, *, runtime: str = "torch", min_confidence: float | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS):
    """Recognizer.load with the server's settings; `model` None means the shipped model."""
    return Recognizer.load(model, runtime=runtime, min_confidence=min_confidence, max_pixels=max_pixels)


def model_info(recognizer, min_confidence: float | None) -> dict:
    """recognizer.info (name, architecture, metrics, versions, runtime) plus the serving threshold;
    never the model's path on the server's disk (its name says which model it is)."""
    info = dict(getattr(recognizer, "info", {}) or {})
    info.pop("path", None)
    info.setdefault("metrics", {})
    info.setdefault("digitlab_version", __version__)
    info["min_confidence"] = float(getattr(recognizer, "min_confidence", min_confidence or 0.7))
    return _jsonable(info)


def decode(data: bytes, limits: ServeLimits):
    """(PIL image, reduced to the working size, note) from an upload; 413 when the header declares
    more than max_pixels, 422 when the bytes are not a readable image. Big images wait for a decode
    slot (see memory.DecodeGate)."""
    pixels = header_pixels(data)
    try:
        with DECODE_GATE.decoding(pixels if pixels <= limits.max_pixels else 0):
            return load_image(data, max_pixels=limits.max_pixels, max_bytes=limits.max_bytes)
    except ImageError as exc:
        # The pixel limit is a size limit (413); anything else is a bad file (422).
        status = 413 if pixels > limits.max_pixels else 422
        raise ApiError(status, " ".join(str(exc).split())) from None


def predict_image(recognizer, data: bytes, filename: str | None, include_image: bool, limits: ServeLimits) -> dict:
    """One digit from an encoded image: the Prediction's JSON (see schemas.PredictionOut)."""
    image, note = decode(data, limits)
    return _with_source(recognizer.predict_one(image).to_dict(include_image=include_image), filename, note)


BLANK_LEVEL = 0.1  # a 28x28 array with no pixel above this holds no ink: no digit, not a guess


def pixels_result(x28: np.ndarray, probs: np.ndarray | None, include_image: bool, min_confidence: float,
                  temperature: float = 1.0) -> dict:
    """The Prediction JSON for a 28x28 array (float32 in [0, 1], ink = 1) used as the model input as it
    is; `probs` (C,) are the model's own probabilities, None for a blank array (see `is_blank`); they are
    reported calibrated with `temperature`, as the Recognizer reports its predictions."""
    if probs is None:
        prediction = Prediction(source=None, digit=None, confidence=0.0, probabilities=(), unsure=True,
                                image28=x28, note=f"no digit found: no pixel is above {BLANK_LEVEL}")
    else:
        if temperature != 1.0:
            probs = apply_temperature(probs, temperature)
        probs = np.asarray(probs, dtype=np.float64)
        digit = int(probs.argmax())
        confidence = float(probs[digit])
        prediction = Prediction(source=None, digit=digit, confidence=confidence,
                                probabilities=tuple(probs.tolist()), unsure=confidence < min_confidence,
                                image28=x28)
    return prediction.to_dict(include_image=include_image)


def is_blank(x28: np.ndarray) -> bool:
    return float(x28.max()) <= BLANK_LEVEL


def read_image(recognizer, data: bytes, filename: str | None, include_images: bool, limits: ServeLimits) -> dict:
    """A multi-digit number from an encoded image: the Reading's JSON (see schemas.ReadingOut)."""
    image, note = decode(data, limits)
    return _with_source(recognizer.read(image).to_dict(include_images=include_images), filename, note)


def _with_source(out: dict, filename: str | None, note: str | None) -> dict:
    """The answer with the upload's file name, and decode's note where the answer has none of its own."""
    out["source"] = filename
    if note and not out.get("note"):
        out["note"] = note
    return out


def _jsonable(value):
    """numpy scalars/arrays and tuples -> plain JSON types (recognizer.info may hold any of them)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
