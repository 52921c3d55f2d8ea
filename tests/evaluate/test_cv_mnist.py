"""A short cross-validation on the real MNIST: sensible fold scores, and the reused model leaks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitlab.cli.main import main

pytestmark = pytest.mark.integration


def _cv(tmp_path, capsys, *extra):
    argv = ["cv", "--folds", "3", "--epochs", "1", "--subset", "6000", "--no-download", "--device", "cpu",
            "-o", str(tmp_path / ("leaky" if extra else "fresh")), "--json", *extra]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_short_mnist_cv_and_the_leak(mnist, tmp_path, capsys):
    fresh = _cv(tmp_path, capsys)
    scores = np.array(fresh["scores"])
    # 1 epoch on 4,000 images: well above chance, below the full-data 97-98%.
    assert scores.shape == (3,) and (scores > 0.80).all() and (scores < 0.97).all()
    assert fresh["std"] == pytest.approx(np.std(scores), abs=1e-6)
    leaky = _cv(tmp_path, capsys, "--reuse-model")
    assert leaky["leaky"] is True
    # Fold 1 is the same experiment in both protocols; from fold 2 on the reused model has trained on the
    # test fold already (and for longer), so it scores higher than the honest fresh model.
    assert leaky["scores"][0] == pytest.approx(fresh["scores"][0], abs=1e-9)
    assert np.mean(leaky["scores"][1:]) > np.mean(fresh["scores"][1:]) + 0.01
