"""The shipped model and preprocessing on real digits: realdigits-dev (210 images from 19 sources) and
scikit-learn's digits as they are (8x8, dark ink on white, no margin), through predict's real path.

Floors sit a little under what the shipped model reaches (bench/real_world.py prints the figures
beside their goals); a drop below one is a regression.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOORS = {"realdigits": 0.99, "realdigits_each_source": 0.85, "sklearn_digits": 0.96, "read_agrees": 0.98}


@pytest.fixture(scope="module")
def realdigits() -> Path:
    root = Path(os.environ.get("DIGITLAB_DATA_DIR", "")) / "realdigits-dev"
    if not (root / "manifest.csv").is_file():
        pytest.skip("realdigits-dev not available: set DIGITLAB_DATA_DIR to a folder with realdigits-dev/")
    return root


@pytest.fixture(scope="module")
def realdigits_score(realdigits, shipped):
    from digitlab.inference.folder import list_image_folder, score_folder

    return score_folder(shipped, list_image_folder(realdigits))


def test_realdigits_dev_overall_and_on_every_source(realdigits_score):
    score = realdigits_score
    assert score["n"] == 210 and len(score["per_source"]) == 19
    assert score["accuracy"] >= FLOORS["realdigits"], score["confusions"]
    worst = {s: t["accuracy"] for s, t in score["per_source"].items() if t["accuracy"] < FLOORS["realdigits_each_source"]}
    assert not worst, worst
    assert score["unreadable"] == 0 and score["no_digit"] == 0  # every image holds visible ink


def _png(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    return buf.getvalue()


def test_sklearn_digits_as_they_are(shipped):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pngs = [_png(np.rint(255 - im * 255 / 16).astype(np.uint8)) for im in bunch.images]  # 8x8, no margin
    predictions = shipped.predict(pngs)
    digits = np.array([-1 if p.digit is None else p.digit for p in predictions])
    assert len(pngs) == 1797 and all(p.error is None for p in predictions)
    assert float((digits == bunch.target).mean()) >= FLOORS["sklearn_digits"]


def test_read_answers_what_predict_answers_on_real_single_digits(realdigits, shipped):
    files = sorted(str(p) for p in realdigits.glob("[0-9]/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    predicted = shipped.predict(files)
    agree = [shipped.read(f).number == ("" if p.digit is None else str(p.digit)) for f, p in zip(files, predicted)]
    assert len(files) == 210 and np.mean(agree) >= FLOORS["read_agrees"]
