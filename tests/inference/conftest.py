"""Fixtures for the inference tests: image files they write, and a small saved model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference_helpers import encode, png_header_only, ring_digit


@pytest.fixture(scope="session")
def shipped():
    """The shipped model, loaded once: the tests only read from it."""
    from digitlab.inference.recognizer import Recognizer

    return Recognizer.load()


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory):
    """An untrained (seeded) article mlp saved as a run folder: real loading, real inference."""
    import torch

    from digitlab.models.registry import build_model
    from digitlab.models.storage import save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs") / "mlp"
    save_model(build_model("mlp"), folder, metrics={"test_accuracy": 0.1})
    return folder


@pytest.fixture
def images(tmp_path):
    """A folder with good images and every kind of bad one; returns a dict name -> path."""
    paths = {}

    def put(name: str, data: bytes):
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = path

    ring = Image.fromarray(ring_digit(200))
    put("ring.png", encode(ring))
    put("ring.jpg", encode(ring.convert("RGB"), "JPEG", quality=85))
    put("empty.png", b"")
    put("notes.png", b"these are my notes, not an image\n")
    put("truncated.png", encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128), np.uint8)))[:3000])
    put("truncated.jpg", encode(ring.convert("RGB"), "JPEG", quality=95)[:1500])
    put("bomb.png", png_header_only(30000, 30000))
    return paths
