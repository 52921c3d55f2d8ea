"""The model that ships inside the package: small, loads without pickle, and scores >= 99.6% on MNIST."""

from __future__ import annotations

import pickle

import pytest

from digitlab.models.storage import META_NAME, WEIGHTS_NAME, load_model, load_model_meta, pretrained_path

FOLDER = pretrained_path()
SHIPPED = (FOLDER / WEIGHTS_NAME).exists() and (FOLDER / META_NAME).exists()
pytestmark = pytest.mark.skipif(
    not SHIPPED,
    reason=f"no pretrained model in {FOLDER}: it is trained with `digitlab train --preset real --from "
           "bench/previous_model --seed 0`, calibrated, and copied there",
)


def test_shipped_files_are_small_and_describe_how_they_were_made():
    assert (FOLDER / WEIGHTS_NAME).stat().st_size < 5_000_000
    meta = load_model_meta(FOLDER)
    assert meta["num_params"] <= 1_200_000
    command = (meta.get("made_with") or {}).get("command") or meta.get("command", "")
    assert command.startswith("digitlab train") and f"--preset {meta['preset']}" in command
    assert f"--seed {meta['seed']}" in command and meta["train_config"]["seed"] == meta["seed"]
    assert meta["environment"]["versions"]["torch"]
    assert meta["metrics"]["test_accuracy"] >= 0.996
    if "started_from" in meta:  # fine-tuned: the starting model is identified by its weights
        assert len(meta["started_from"]["weights_sha256"]) == 64 and "--from" in command


def test_its_preset_holds_the_shipped_models_recipe():
    from digitlab.train.config import TrainConfig
    from digitlab.train.presets import PRESETS

    meta = load_model_meta(FOLDER)
    preset = PRESETS[meta["preset"]]
    assert meta["architecture"]["name"] == preset["model"]
    assert all(meta["architecture"]["kwargs"][k] == v for k, v in preset["model_kwargs"].items())
    saved = TrainConfig.from_dict(meta["train_config"]).to_flat()
    assert {k: saved[k] for k in preset["config"]} == preset["config"]


def test_loads_without_unpickling(monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("loading the shipped model must not unpickle anything")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    model = load_model()  # None = the shipped model
    assert not model.training
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.integration
def test_scores_at_least_99_6_percent_on_the_mnist_test_set(mnist):
    from digitlab.evaluate.metrics import evaluate

    model = load_model()
    scores = evaluate(model, mnist.x_test, mnist.y_test, classes=mnist.classes)
    assert scores["accuracy"] >= 0.996
    recorded = model.digitlab_meta["metrics"]["test_accuracy"]
    assert scores["accuracy"] == pytest.approx(recorded, abs=2e-4)  # reproduces the recorded figure


@pytest.mark.integration
def test_its_stored_temperature_makes_test_confidences_match_test_accuracy(mnist):
    """Fitted on augmented training images (never on the test set), the temperature still fits the test set."""
    from digitlab.evaluate.metrics import predict_proba
    from digitlab.evaluate.temperature import apply_temperature, calibration_stats

    meta = load_model_meta(FOLDER)
    scaling = meta["temperature_scaling"]
    assert "training images" in scaling["fitted_on"] and 0.2 < scaling["temperature"] < 1.0
    raw = predict_proba(load_model(), mnist.x_test)
    before = calibration_stats(raw, mnist.y_test)
    after = calibration_stats(apply_temperature(raw, scaling["temperature"]), mnist.y_test)
    assert after["accuracy"] == before["accuracy"]
    assert after["ece"] < 0.01 < before["ece"] and after["nll"] < 0.5 * before["nll"]
    assert after["nll"] == pytest.approx(scaling["test"]["after"]["nll"], abs=1e-3)  # as recorded
