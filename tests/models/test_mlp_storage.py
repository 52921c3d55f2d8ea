"""The article's mlp, the registry, summaries, and pickle-free storage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from digitlab.errors import ConfigError, ModelError
from digitlab.models.registry import build_model, default_kwargs
from digitlab.models.storage import load_model, save_model
from digitlab.models.summary import model_summary


def test_mlp_matches_the_article_parameter_count():
    model = build_model("mlp")
    counts = [p.numel() for p in model.parameters()]
    assert counts == [784 * 512, 512, 512 * 10, 10]
    assert sum(counts) == 401_920 + 5_130 == 407_050


def test_mlp_uses_keras_initialisation():
    torch.manual_seed(0)
    model = build_model("mlp")
    w = model.dense1.weight.detach()
    limit = np.sqrt(6 / (784 + 512))  # glorot-uniform bound
    assert w.abs().max() <= limit
    assert w.abs().max() > 0.95 * limit  # uniform over the whole range, not a narrower default
    assert torch.count_nonzero(model.dense1.bias) == 0 and torch.count_nonzero(model.dense2.bias) == 0


def test_mlp_forward_shape_and_logits():
    model = build_model("mlp")
    out = model(torch.rand(7, 1, 28, 28))
    assert out.shape == (7, 10)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # logits, not probabilities


def test_summary_lists_layers_shapes_and_totals():
    text = model_summary(build_model("mlp"), title="mlp")
    assert "(None, 784)" in text and "(None, 512)" in text and "(None, 10)" in text
    assert "401,920" in text and "5,130" in text and "Total params: 407,050" in text


def test_unknown_model_and_option_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope")
    with pytest.raises(ConfigError, match="has no option"):
        build_model("mlp", widht=3)


def test_save_load_roundtrip_is_exact(tmp_path):
    model = build_model("mlp", hidden=32)
    save_model(model, tmp_path / "run", metrics={"test_accuracy": 0.5})
    loaded = load_model(tmp_path / "run")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.digitlab_meta["architecture"] == {"name": "mlp", "kwargs": {**default_kwargs("mlp"), "hidden": 32}}
    # The same model is reachable from the weights file and from the JSON.
    assert load_model(tmp_path / "run" / "model.safetensors").dense1.out_features == 32
    assert load_model(tmp_path / "run" / "model.json").dense1.out_features == 32


def test_storage_holds_no_pickle(tmp_path):
    save_model(build_model("mlp", hidden=8), tmp_path)
    weights = (tmp_path / "model.safetensors").read_bytes()
    header_len = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + header_len])  # safetensors: a JSON header, then raw tensor bytes
    assert {"dense1.weight", "dense2.bias"} <= set(header)
    assert b"\x80\x04" not in weights[:2] and not weights.startswith(b"PK")  # no pickle, no torch zip
    json.loads((tmp_path / "model.json").read_text())  # plain JSON


def test_load_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.bin")
    with pytest.raises(ModelError, match="holds no model.json"):
        load_model(tmp_path)
    save_model(build_model("mlp", hidden=8), tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt"):
        load_model(tmp_path / "run")
    # weights of another architecture
    save_model(build_model("mlp", hidden=16), tmp_path / "other")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    (tmp_path / "run" / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="do not match architecture"):
        load_model(tmp_path / "run")
    assert meta["architecture"]["kwargs"]["hidden"] == 8
