"""Recognizer: people's images in, digits out. The API behind `digitlab predict`, `read` and the server.

    from digitlab.inference.recognizer import Recognizer
    rec = Recognizer.load()                       # the shipped model; or load("runs/cnn"), load("m.onnx")
    for p in rec.predict(["seven.jpg", pil_image, array]):
        print(p.source, p.digit, p.confidence, p.top(3), p.unsure, p.error)
    print(rec.read("house-number.png").number)    # "2026"

Inputs may be paths, encoded bytes, PIL images or numpy arrays (any polarity, any size). In a list,
bad input (a missing file, undecodable bytes) comes back as a Prediction with `error` set, and the
rest go on; a single input that cannot be read raises ImageError naming the problem.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn.utils.fusion import fuse_conv_bn_eval

from digitlab import __version__
from digitlab.errors import ConfigError, ImageError, ModelError
from digitlab.evaluate.temperature import apply_temperature
from digitlab.inference.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decoded_scale, load_image
from digitlab.inference.digit_score import box_of
from digitlab.inference.onnx_export import OnnxBackend, exported_session
from digitlab.inference.preprocess import InkImage, digit_to_28, extract_digit, extract_ink
from digitlab.inference.segment import (
    MAX_WIDTH,
    ONE_DIGIT_WIDTH,
    Segment,
    apart,
    ink_aspect,
    segment_line,
    side_by_side,
)
from digitlab.models.storage import load_model, pretrained_path
from digitlab.train.predict import predict_logits

RUNTIMES = ("torch", "onnx")
BATCH = 1024  # images per model call
# Below this top probability an answer is flagged unsure. A calibrated model (digitlab calibrate) means
# what it says, so its bar is high; an uncalibrated one trained with label smoothing never goes much over
# 0.92. On 4,000 held-out user-style images the two defaults flag about the same answers (1.6-1.9% of
# them) and catch about the same share of the errors (50-65%) with the shipped model.
DEFAULT_MIN_CONFIDENCE = 0.7
CALIBRATED_MIN_CONFIDENCE = 0.95


def default_min_confidence(temperature: float) -> float:
    """The unsure threshold for a model with this temperature (1.0: never calibrated)."""
    return DEFAULT_MIN_CONFIDENCE if temperature == 1.0 else CALIBRATED_MIN_CONFIDENCE


def _png_base64(image28: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.rint(np.clip(image28, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Prediction:
    """One image's answer. `unsure` is `confidence < min_confidence`, so it is also True when no
    digit was found or the input failed (digit None, confidence 0.0)."""

    source: str | None
    digit: int | None
    confidence: float
    probabilities: tuple[float, ...]
    unsure: bool
    image28: np.ndarray | None
    note: str | None = None
    error: str | None = None

    def __repr__(self) -> str:
        # Short: the 28x28 image and the probabilities stay out (they made the repr 11 kB).
        extra = "".join(f", {k}={v!r}" for k, v in (("note", self.note), ("error", self.error)) if v)
        return (f"Prediction(source={self.source!r}, digit={self.digit}, confidence={self.confidence:.3f}, "
                f"unsure={self.unsure}{extra})")

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        """The k most probable classes, most probable first: [(class, probability), ...]."""
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), float(self.probabilities[i])) for i in order]

    def to_dict(self, include_image: bool = False) -> dict:
        out: dict[str, Any] = {
            "source": self.source,
            "digit": self.digit,
            "confidence": round(float(self.confidence), 6),
            "unsure": bool(self.unsure),
            "top": [{"digit": d, "probability": round(p, 6)} for d, p in self.top(3)],
            "probabilities": [round(float(p), 6) for p in self.probabilities],
            "note": self.note,
            "error": self.error,
        }
        if include_image:
            out["image"] = None if self.image28 is None else _png_base64(self.image28)
        return out


@dataclass(frozen=True)
class Reading:
    """A multi-digit number read from one image; `boxes` are (x0, y0, x1, y1) in input pixels."""

    source: str | None
    number: str
    digits: tuple[Prediction, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    confidence: float
    unsure: bool

    def __repr__(self) -> str:
        return (f"Reading(source={self.source!r}, number={self.number!r}, confidence={self.confidence:.3f}, "
                f"unsure={self.unsure}, {len(self.digits)} digits)")

    def to_dict(self, include_images: bool = False) -> dict:
        return {
            "source": self.source,
            "number": self.number,
            "confidence": round(float(self.confidence), 6),
            "unsure": bool(self.unsure),
            "digits": [
                {**d.to_dict(include_image=include_images), "box": list(b)} for d, b in zip(self.digits, self.boxes)
            ],
        }


class TorchBackend:
    """Probabilities from a digitlab torch model: (N, 28, 28) float32 -> (N, C) float32.

    On the CPU it runs an inference copy of the model: batch norm folded into the convolutions and
    channels-last memory for convnets (the same function to 1e-6; measured 1.3x faster at batch 1).
    The thread count stays the process's: it is process-wide, and a server answers several callers.
    """

    def __init__(self, model, device: str = "cpu"):
        self.model = model
        self.device = device
        self.channels_last = device == "cpu" and _is_convnet(model)
        self.fast = _inference_copy(model, self.channels_last) if device == "cpu" else model

    def __call__(self, x28: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x28, dtype=np.float32).reshape(-1, 1, 28, 28)
        logits = predict_logits(self.fast, x, device=self.device, channels_last=self.channels_last)
        return torch.softmax(logits, dim=1).cpu().numpy()


def _is_convnet(model) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _inference_copy(model, channels_last: bool):
    """An eval-mode copy with each Conv2d -> BatchNorm2d pair of an nn.Sequential folded into one
    convolution (channels-last for convnets); other models, and a model in training mode, run as
    they are."""
    if model.training or not isinstance(model, torch.nn.Sequential):
        return model
    fast = copy.deepcopy(model)
    names = list(fast._modules)
    for conv_name, bn_name in zip(names, names[1:]):
        conv, bn = fast._modules[conv_name], fast._modules[bn_name]
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
            fast._modules[conv_name], fast._modules[bn_name] = fuse_conv_bn_eval(conv, bn), torch.nn.Identity()
    return fast.to(memory_format=torch.channels_last) if channels_last else fast


class Recognizer:
    """Preprocessing (MNIST-style), a model (torch or ONNX Runtime) and the unsure threshold."""

    def __init__(self, backend, info: dict, classes: list[str], min_confidence: float | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES, temperature: float = 1.0):
        if min_confidence is None:
            min_confidence = default_min_confidence(temperature)
        if not 0.0 <= min_confidence <= 1.0:
            raise ConfigError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if max_pixels < 28 * 28:
            raise ConfigError(f"max_pixels must be at least 784 (28x28), got {max_pixels}")
        self.backend = backend
        self.info = info
        self.classes = classes
        self.min_confidence = float(min_confidence)
        self.max_pixels = int(max_pixels)
        self.max_bytes = int(max_bytes)
        # From `digitlab calibrate` (the model's JSON): the probabilities that predict and read report
        # are softmax(logits / T), so that a confidence of 0.99 is right 99% of the time.
        self.temperature = float(temperature)
        self.info.setdefault("temperature", self.temperature)

    @classmethod
    def load(cls, model: str | Path | None = None, *, runtime: str = "torch",
             min_confidence: float | None = None, device: str = "cpu",
             max_pixels: int = DEFAULT_MAX_PIXELS) -> "Recognizer":
        """model: a run folder, a .safetensors/.json model file, an .onnx file (implies the ONNX
        runtime), or None for the model shipped in the package. runtime: "torch" or "onnx" (a torch
        model is then exported to a temporary ONNX file, parity-checked). min_confidence: None for
        the default (default_min_confidence: 0.95 for a calibrated model, 0.7 otherwise)."""
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if model is not None and Path(model).suffix.lower() == ".onnx":
            return cls._load_onnx_file(Path(model), min_confidence, max_pixels)

        torch_model = load_model(model, device="cpu" if runtime == "onnx" else device)
        meta = torch_model.digitlab_meta
        source = Path(model) if model is not None else pretrained_path()
        if runtime == "onnx":
            backend = exported_session(torch_model)
        else:
            backend = TorchBackend(torch_model, device)
        metrics = meta.get("metrics") or {}
        info = {
            "name": source.name if source.is_dir() else source.stem,
            "path": str(source),
            "architecture": (meta.get("architecture") or {}).get("name"),
            "metrics": metrics,
            "test_accuracy": metrics.get("test_accuracy", metrics.get("accuracy")),
            "model_digitlab_version": meta.get("digitlab_version"),
            "digitlab_version": __version__,
            "runtime": runtime,
            "device": device if runtime == "torch" else "cpu",
        }
        return cls(backend, info, list(meta.get("classes") or [str(i) for i in range(10)]), min_confidence, max_pixels,
                   temperature=_temperature_of(meta.get("temperature_scaling")))

    @classmethod
    def _load_onnx_file(cls, path: Path, min_confidence: float | None, max_pixels: int) -> "Recognizer":
        if not path.is_file():
            raise ModelError(f"ONNX model not found: {path} (export one with `digitlab export RUN --onnx {path}`)")
        backend = OnnxBackend(path)
        metrics = json.loads(backend.metadata.get("digitlab.metrics", "{}") or "{}")
        arch = json.loads(backend.metadata.get("digitlab.architecture", "{}") or "{}")
        info = {
            "name": path.stem, "path": str(path), "architecture": arch.get("name"), "metrics": metrics,
            "test_accuracy": metrics.get("test_accuracy", metrics.get("accuracy")),
            "model_digitlab_version": backend.metadata.get("digitlab.version"),
            "digitlab_version": __version__, "runtime": "onnx", "device": "cpu",
        }
        scaling = json.loads(backend.metadata.get("digitlab.temperature_scaling", "null") or "null")
        return cls(backend, info, list(backend.classes), min_confidence, max_pixels,
                   temperature=_temperature_of(scaling))

    # -- the model on prepared 28x28 images ---------------------------------------------------------

    def predict_batch28(self, x28: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] (MNIST polarity) -> the model's own probabilities float32 (N, C).

        Raw, before the temperature: the multi-digit reading's scores were tuned on these. `predict`
        and `read` report calibrated ones."""
        x = np.asarray(x28, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ConfigError(f"expected images shaped (N, 28, 28), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return np.concatenate([self.backend(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])

    # -- single digits ------------------------------------------------------------------------------

    def prepare(self, image) -> tuple[np.ndarray | None, str | None]:
        """(image28 or None, note) for one input; raises ImageError when it cannot be decoded.
        image28 is None when no digit was found; the note then says why."""
        pil, note = load_image(image, max_pixels=self.max_pixels, max_bytes=self.max_bytes)
        ink, digit = extract_digit(pil)
        if digit is None:
            return None, _join(note, ink.reason)
        return digit_to_28(ink.ink, digit), note

    def predict_one(self, image) -> Prediction:
        """One input -> Prediction; raises ImageError on undecodable input."""
        image28, note = self.prepare(image)
        probs = None if image28 is None else self.predict_batch28(image28[None])[0]
        return self._prediction(_source_of(image), image28, probs, note)

    def predict(self, images) -> list[Prediction]:
        """A list of inputs -> one Prediction each, in order; an input that cannot be read (a missing
        file, undecodable bytes) gets a Prediction carrying `error`, so a batch goes on past it.

        One input (not in a list) -> [Prediction], raising ImageError when it cannot be read.
        """
        if not isinstance(images, (list, tuple)):
            return [self.predict_one(images)]
        items = list(images)
        prepared: list[tuple[np.ndarray | None, str | None, str | None]] = []
        for item in items:
            try:
                image28, note = self.prepare(item)
                prepared.append((image28, note, None))
            except ImageError as exc:
                prepared.append((None, None, str(exc)))
        good = [i for i, (image28, _, _) in enumerate(prepared) if image28 is not None]
        probs = self.predict_batch28(np.stack([prepared[i][0] for i in good])) if good else None
        row = {i: k for k, i in enumerate(good)}
        return [
            self._prediction(_source_of(item), image28, probs[row[i]] if i in row else None, note, error)
            for i, (item, (image28, note, error)) in enumerate(zip(items, prepared))
        ]

    def _prediction(self, source, image28, probs, note=None, error=None) -> Prediction:
        if probs is None:
            return Prediction(source, None, 0.0, (), True, image28, note, error)
        if self.temperature != 1.0:
            probs = apply_temperature(probs, self.temperature)
        digit = int(np.argmax(probs))
        confidence = float(probs[digit])
        return Prediction(source, digit, confidence, tuple(float(p) for p in probs),
                          confidence < self.min_confidence, image28, note, error)

    # -- numbers ------------------------------------------------------------------------------------

    def read(self, image) -> Reading:
        """Read a line of handwritten digits, left to right; raises ImageError on undecodable input."""
        pil, note = load_image(image, max_pixels=self.max_pixels, max_bytes=self.max_bytes)
        source = _source_of(image)
        ink = extract_ink(pil)
        if ink.mask is None:
            # predict's coarse pass can find a faint digit that falls under the contrast floor at full
            # scale (a fine pencil line in a big photo): read answers that digit, as predict does.
            found = self._predicts_digit(pil, full_scale=False)  # extract_ink was the full scale
            if found is None:
                return Reading(source, "", (), (), 0.0, True)
            ink, segments = found[0], [found[1]]
        else:
            # The segments come back with the 28x28 images and raw probabilities they were read with.
            segments = segment_line(ink.ink, ink.mask, classify=self.predict_batch28)
            if segments:
                ink, segments = self._one_digit_reading(pil, ink, segments)
        digits = tuple(self._prediction(source, s.image28, s.probs, note) for s in segments)
        scale = ink.scale * decoded_scale(pil)  # working pixels per input pixel (decoding may reduce too)
        width, height = ink.ink.shape[1] / scale, ink.ink.shape[0] / scale
        boxes = tuple(_input_box(s.box, scale, width, height) for s in segments)
        number = "".join(self.classes[d.digit] for d in digits)
        confidence = float(np.prod([d.confidence for d in digits])) if digits else 0.0
        unsure = not digits or any(d.unsure for d in digits)
        return Reading(source, number, digits, boxes, confidence, unsure)


    def _one_digit_reading(self, pil, ink, segments):
        """(ink, segments) of the reading: `predict`'s digit, so that `read` on an image of one digit
        answers what `predict` answers. Always when the reading found one digit (predict frames it its
        own way: a coarse pass, far specks left out); instead of several when the ink is digit-shaped
        (see segment.is_one_digit), unless the parts are digits of one height side by side (see
        segment.side_by_side, "11") or have a column without ink between them (segment.apart, a 1
        beside a shorter 4), and the model is surer of them than of the ink as one digit. Ink
        wider than a digit, up to MAX_WIDTH, cut in two parts of unequal height whose columns meet or
        overlap (a 7's bar over its stem, an open 4's arm) is one digit too when the model is surer of
        it as one; two digits with a gap between them stay two."""
        several = len(segments) > 1
        aspect = ink_aspect(ink.mask) if several else 0.0  # one segment: predict's digit, no test needed
        wide = aspect > ONE_DIGIT_WIDTH
        if wide and (len(segments) > 2 or aspect > MAX_WIDTH or apart(*segments)
                     or side_by_side(segments, ink.mask)):
            return ink, segments
        found = self._predicts_digit(pil)
        if found is None:
            return ink, segments
        one, segment = found
        if (several and (wide or apart(*segments) or side_by_side(segments, ink.mask))
                and float(segment.probs.max()) < float(np.prod([s.probs.max() for s in segments]))):
            return ink, segments
        return one, [segment]

    def _predicts_digit(self, pil, full_scale: bool = True) -> tuple[InkImage, Segment] | None:
        """(ink, segment) of the one digit `predict` finds in the image, or None when it finds none
        (full_scale=False: at the coarse scale; see extract_digit)."""
        one, digit = extract_digit(pil, full_scale)
        if digit is None:
            return None
        image28 = digit_to_28(one.ink, digit)
        return one, Segment(digit, box_of(digit), image28, self.predict_batch28(image28[None])[0])


def _temperature_of(scaling) -> float:
    """The temperature stored by `digitlab calibrate` (1.0 when the model was never calibrated)."""
    if not isinstance(scaling, dict):
        return 1.0
    t = scaling.get("temperature")
    return float(t) if isinstance(t, (int, float)) and t > 0 else 1.0


def _input_box(box, scale: float, width: float, height: float) -> tuple[int, int, int, int]:
    y0, x0, y1, x1 = box
    return (int(x0 / scale), int(y0 / scale), min(int(np.ceil(x1 / scale)), int(round(width))),
            min(int(np.ceil(y1 / scale)), int(round(height))))


def _source_of(item) -> str | None:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else None


def _join(*notes: str | None) -> str | None:
    text = "; ".join(n for n in notes if n)
    return text or None
