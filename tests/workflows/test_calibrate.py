"""dl.calibrate: the temperature fitted from Python, as `digitlab calibrate` fits it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import digitlab as dl
from digitlab.cli.main import main
from digitlab.data.dataset import Dataset
from digitlab.errors import ConfigError
from digitlab.evaluate.temperature import fit_temperature
from digitlab.train.tensors import split_validation, to_input_tensor

CONFIG = dl.TrainConfig.from_flat(epochs=3, batch_size=32, device="cpu", threads=1, val_split=100, seed=0)


@pytest.fixture
def tiny(tiny_digits):
    x, y = tiny_digits
    return Dataset("mnist", x[:500], y[:500], x[500:], y[500:], tuple(str(i) for i in range(10)), "memory")


@pytest.fixture
def trained(tiny):
    torch.manual_seed(0)
    model = dl.build_model("mlp", hidden=32)
    dl.fit(model, tiny.x_train, tiny.y_train, CONFIG, verbose=False)
    return model


def _val_logits(model, data, n_val=100, seed=0):
    *_, x_val, y_val = split_validation(to_input_tensor(data.x_train), torch.tensor(data.y_train), n_val, seed)
    with torch.no_grad():
        return model.eval()(x_val).numpy(), y_val.numpy()


def test_a_fitted_model_is_calibrated_on_its_validation_split(trained, tiny):
    record = dl.calibrate(trained, tiny, config=CONFIG)
    logits, labels = _val_logits(trained, tiny)
    assert record["temperature"] == pytest.approx(fit_temperature(logits, labels), abs=2e-4)
    assert "validation split (100" in record["fitted_on"]
    assert record["model"] is None  # nothing written: the record goes with the model object
    assert trained.digitlab_meta["temperature_scaling"]["temperature"] == record["temperature"]
    assert record["test"]["before"]["accuracy"] == record["test"]["after"]["accuracy"]
    assert record["fit"]["after"]["nll"] <= record["fit"]["before"]["nll"]


def test_a_run_folder_gets_the_temperature_in_its_json(trained, tiny, tmp_path):
    run = dl.save_model(trained, tmp_path / "run", train_config=CONFIG, metrics={"dataset": "mnist"})
    record = dl.calibrate(run, tiny)
    stored = json.loads((run / "model.json").read_text())["temperature_scaling"]
    assert record["model"] == str(run / "model.json") and stored["temperature"] == record["temperature"]
    assert dl.Recognizer.load(run).temperature == pytest.approx(record["temperature"])


def test_the_cli_calls_the_same_calibration(trained, tiny, tmp_path, capsys):
    from digitlab.data.idx import encode_idx

    folder = tmp_path / "tiny-mnist"
    folder.mkdir()
    for name, array in {"train-images-idx3-ubyte": tiny.x_train, "train-labels-idx1-ubyte": tiny.y_train,
                        "t10k-images-idx3-ubyte": tiny.x_test, "t10k-labels-idx1-ubyte": tiny.y_test}.items():
        (folder / name).write_bytes(encode_idx(np.asarray(array, dtype=np.uint8)))
    run = dl.save_model(trained, tmp_path / "run", train_config=CONFIG, metrics={"dataset": "mnist"})
    expected = dl.calibrate(trained, tiny, config=CONFIG)["temperature"]
    capsys.readouterr()
    assert main(["calibrate", str(run), "--data-dir", str(folder), "--no-download", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["temperature"] == expected and printed["model"] == str(run / "model.json")


def test_refusals_name_the_fix_and_write_nothing(trained, tiny, tmp_path):
    run = dl.save_model(trained, tmp_path / "run", train_config=CONFIG, metrics={"dataset": "mnist"})
    before = (run / "model.json").read_text()
    with pytest.raises(ConfigError, match="trained on mnist.*--dataset mnist"):
        dl.calibrate(run, "fashion-mnist", download=False)  # refused before any data is looked for
    with pytest.raises(ConfigError, match="at least 100"):
        dl.calibrate(run, tiny, on="augmented-train", images=5)
    assert (run / "model.json").read_text() == before
    with pytest.raises(ConfigError, match="no image is held out"):
        dl.calibrate(trained, tiny, config=CONFIG.replace(val_split=0))
    with pytest.raises(ConfigError, match="give -o FOLDER"):
        dl.calibrate("pretrained", tiny)
    with pytest.raises(ConfigError, match="unknown calibration source 'test'"):
        dl.calibrate(trained, tiny, on="test", config=CONFIG)
    with pytest.raises(ConfigError, match="save_model first"):
        dl.calibrate(trained, tiny, config=CONFIG, output=tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
