"""Temperature scaling: the maths, `digitlab calibrate`, and the Recognizer reporting calibrated probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitlab.cli.main import main
from digitlab.evaluate.temperature import apply_temperature, calibration_stats, fit_temperature


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_applying_a_temperature_to_probabilities_is_softmax_of_scaled_logits(temperature):
    z = np.random.default_rng(0).normal(0, 4, (50, 10))
    got = apply_temperature(_softmax(z), temperature)
    np.testing.assert_allclose(got, _softmax(z / temperature), rtol=1e-5, atol=1e-7)
    assert (got.argmax(1) == z.argmax(1)).all()  # the order of the classes never changes


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (20_000, 10))
    for true_t in (0.5, 2.0):
        p = _softmax(z / true_t)
        labels = (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)  # one draw per row from softmax(z / T)
        assert fit_temperature(z, labels) == pytest.approx(true_t, rel=0.05)


def test_calibration_stats_measure_the_gap_between_confidence_and_accuracy():
    probs = np.array([[0.9, 0.1]] * 10)
    labels = np.array([0] * 5 + [1] * 5)  # 90% confident, 50% right
    stats = calibration_stats(probs, labels)
    assert stats["accuracy"] == 0.5 and stats["mean_confidence"] == pytest.approx(0.9)
    assert stats["ece"] == pytest.approx(0.4)
    assert stats["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.1)) / 2, rel=1e-4)


FAST = ["--model-arg", "hidden=32", "--epochs", "3", "--batch-size", "32", "--device", "cpu", "--threads", "1",
        "--no-download"]


def _train(tmp_path, data_dir, name, *extra):
    out = tmp_path / name
    assert main(["train", "--model", "mlp", "--data-dir", str(data_dir), "-o", str(out), *FAST, *extra]) == 0
    return out


def test_calibrate_fits_on_the_runs_validation_split_and_stores_the_temperature(tmp_path, tiny_mnist_dir, capsys):
    import torch

    from digitlab.models.storage import load_model
    from digitlab.train.tensors import split_validation, to_input_tensor

    run = _train(tmp_path, tiny_mnist_dir, "run", "--val-split", "100")
    capsys.readouterr()
    assert main(["calibrate", str(run), "--data-dir", str(tiny_mnist_dir), "--no-download", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    stored = json.loads((run / "model.json").read_text())["temperature_scaling"]
    assert stored["temperature"] == printed["temperature"] > 0
    assert "validation split (100" in stored["fitted_on"]
    # Fitted on exactly the images the run held out, and on nothing else (the test set is only reported).
    from digitlab.data.dataset import load_dataset

    data = load_dataset("mnist", data_dir=tiny_mnist_dir, download=False)
    *_, x_val, y_val = split_validation(to_input_tensor(data.x_train), torch.tensor(data.y_train), 100, 0)
    model = load_model(run)
    with torch.no_grad():
        logits = model(x_val).numpy()
    assert stored["temperature"] == pytest.approx(fit_temperature(logits, y_val.numpy()), abs=2e-4)
    assert stored["fit"]["after"]["nll"] <= stored["fit"]["before"]["nll"]
    assert stored["test"]["before"]["accuracy"] == stored["test"]["after"]["accuracy"]


def test_calibrate_refuses_what_it_cannot_do_honestly(tmp_path, tiny_mnist_dir, capsys):
    run = _train(tmp_path, tiny_mnist_dir, "plain")  # all training images, no augmentation: nothing held out
    data = ["--data-dir", str(tiny_mnist_dir), "--no-download"]
    before = (run / "model.json").read_text()
    assert main(["calibrate", str(run), *data]) == 2
    assert "no image is held out" in capsys.readouterr().err
    assert main(["calibrate", str(run), "--on", "val", *data]) == 2
    assert "no validation split" in capsys.readouterr().err
    assert main(["calibrate", "pretrained", *data]) == 2
    assert "give -o FOLDER" in capsys.readouterr().err
    assert main(["calibrate", str(run), "--dataset", "fashion-mnist", *data]) == 2
    assert "trained on mnist" in capsys.readouterr().err
    assert main(["calibrate", str(run), "--images", "5", *data]) == 2
    assert "--images must be at least 100" in capsys.readouterr().err
    assert (run / "model.json").read_text() == before  # nothing written on refusal

    # Asked for explicitly, augmented training images work, with a warning; -o leaves the run alone.
    copy = tmp_path / "copy"
    assert main(["calibrate", str(run), "--on", "augmented-train", "--images", "200", "-o", str(copy), *data]) == 0
    assert "warning: this model trained without augmentation" in capsys.readouterr().err
    assert (run / "model.json").read_text() == before
    assert json.loads((copy / "model.json").read_text())["temperature_scaling"]["fitted_on"].startswith(
        "200 training images with affine augmentation")
    assert (copy / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()


def test_the_recognizer_reports_calibrated_probabilities_and_segments_on_raw_ones(tmp_path, tiny_mnist_dir):
    from digitlab.inference.recognizer import Recognizer

    run = _train(tmp_path, tiny_mnist_dir, "run", "--val-split", "100")
    raw = Recognizer.load(run)
    assert raw.temperature == 1.0 and raw.info["temperature"] == 1.0
    meta = json.loads((run / "model.json").read_text())
    meta["temperature_scaling"] = {"temperature": 0.5, "fitted_on": "test"}
    (run / "model.json").write_text(json.dumps(meta))
    calibrated = Recognizer.load(run)
    assert calibrated.temperature == 0.5 and calibrated.info["temperature"] == 0.5

    image = np.zeros((28, 28), np.float32)
    image[8:11, 4:24] = 1.0  # one of tiny_digits' bars
    # predict_batch28 stays raw: the multi-digit reading's scores were tuned on the model's own probabilities.
    np.testing.assert_allclose(calibrated.predict_batch28(image[None]), raw.predict_batch28(image[None]), rtol=1e-6)
    picture = (image * 255).astype(np.uint8)
    before, after = raw.predict(picture)[0], calibrated.predict(picture)[0]
    np.testing.assert_allclose(after.probabilities, apply_temperature(np.array(before.probabilities), 0.5),
                               rtol=1e-5, atol=1e-7)
    assert after.digit == before.digit and after.confidence > before.confidence
    # The unsure bar follows: a calibrated confidence means what it says, a raw one tops out lower.
    assert (raw.min_confidence, calibrated.min_confidence) == (0.7, 0.95)
    assert Recognizer.load(run, min_confidence=0.5).min_confidence == 0.5


def test_the_servers_pixels_path_reports_calibrated_probabilities_too():
    from digitlab.serve.service import pixels_result

    probs = np.array([0.02, 0.9, 0.08], np.float32)
    raw = pixels_result(np.zeros((28, 28), np.float32), probs, False, 0.95)
    calibrated = pixels_result(np.zeros((28, 28), np.float32), probs, False, 0.95, temperature=0.5)
    np.testing.assert_allclose(calibrated["probabilities"], apply_temperature(probs, 0.5), atol=1e-6)
    assert raw["unsure"] and not calibrated["unsure"] and raw["digit"] == calibrated["digit"] == 1


def test_an_exported_onnx_model_keeps_its_temperature(tmp_path, tiny_mnist_dir):
    pytest.importorskip("onnxruntime")
    from digitlab.inference.recognizer import Recognizer

    run = _train(tmp_path, tiny_mnist_dir, "run", "--val-split", "100")
    meta = json.loads((run / "model.json").read_text())
    meta["temperature_scaling"] = {"temperature": 0.7, "fitted_on": "test"}
    (run / "model.json").write_text(json.dumps(meta))
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(run), "--onnx", str(onnx_path)]) == 0
    assert Recognizer.load(onnx_path).temperature == 0.7
