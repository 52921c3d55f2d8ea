"""The convnets: forward shapes, parameter counts, summaries, argument checks, save/load round trips."""

from __future__ import annotations

import pytest
import torch

from digitlab.errors import ConfigError
from digitlab.models.registry import build_model, list_models
from digitlab.models.storage import load_model, save_model
from digitlab.models.summary import model_summary

# Parameter counts, worked out by hand from the layer shapes (weights + biases, BN gamma + beta).
EXPECTED_PARAMS = {
    # conv 1->32 3x3 (288+32) + conv 32->64 (18432+64) + dense 1600->10 (16000+10): Keras's mnist_convnet
    "cnn": 320 + 18_496 + 16_010,
    # stem 1->16 4x4 (256) + bn (32) + conv 16->32 (4608) + bn (64) + conv 32->96 (27648) + bn (192) + dense 864->10
    "fast": 256 + 32 + 4_608 + 64 + 27_648 + 192 + 8_650,
    # three stages of two bias-free 3x3 convs + BN at widths 48, 96, 192; dense 1728->10
    "best": (9 * 1 * 48 + 96) + (9 * 48 * 48 + 96) + (9 * 48 * 96 + 192) + (9 * 96 * 96 + 192)
    + (9 * 96 * 192 + 384) + (9 * 192 * 192 + 384) + (1728 * 10 + 10),
    # ten bias-free unpadded 3x3 convs + BN, widths 32, 48, ..., 176 (28 -> 8); dense 176*8*8 -> 10
    "deep": sum(9 * cin * cout + 2 * cout for cin, cout in zip((1, *range(32, 161, 16)), range(32, 177, 16)))
    + (176 * 64 * 10 + 10),
}
# Narrow widths for the save/load round trips (the architecture, not the size, is under test).
SMALL_WIDTHS = {"cnn": {}, "fast": {"widths": [8, 16, 24]}, "best": {"widths": [8, 16, 24]},
                "deep": {"widths": [4, 4, 6, 6, 8, 8, 10, 10, 12, 12]}}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_forward_shapes_and_parameter_counts(name):
    torch.manual_seed(0)
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]
    for n in (1, 5):
        x = torch.rand(n, 1, 28, 28)
        model.train()
        assert model(x).shape == (n, 10)
        model.eval()
        out = model(x)
        assert out.shape == (n, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_summary_lists_layers_and_totals(name):
    text = model_summary(build_model(name), title=name)
    assert f"Total params: {EXPECTED_PARAMS[name]:,}" in text
    assert "(None, 10)" in text  # the last layer's output shape


def test_registry_lists_the_convnets_with_descriptions():
    entries = {e.name: e.description for e in list_models()}
    assert {"cnn", "fast", "best", "deep"} <= set(entries)
    assert "34,826" in entries["cnn"] and "41,450" in entries["fast"]


def test_best_fits_the_pretrained_budget():
    # The shipped model must stay under 5 MB of float32 weights.
    assert EXPECTED_PARAMS["best"] * 4 < 5_000_000


def test_widths_and_dropout_are_architecture_arguments():
    model = build_model("fast", widths=[8, 16, 32])
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert model.digitlab_arch == {"name": "fast", "kwargs": {"widths": [8, 16, 32], "num_classes": 10, "input_width": None}}
    assert build_model("best", widths=(8, 16, 32), num_classes=3)(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    assert build_model("cnn", dropout=0.0).dropout.p == 0.0
    deep = build_model("deep", widths=[4] * 10, num_classes=3)
    assert deep(torch.rand(2, 1, 28, 28)).shape == (2, 3) and deep.dense.in_features == 4 * 8 * 8


@pytest.mark.parametrize("name,kwargs,match", [
    ("fast", {"widths": [8, 16]}, "needs 3 positive widths"),
    ("best", {"widths": [8, 0, 32]}, "needs 3 positive widths"),
    ("cnn", {"filters": [32, 64, 128]}, "needs 2 positive widths"),
    ("best", {"dropout": 1.0}, "dropout must be in"),
    ("cnn", {"dropout": -0.1}, "dropout must be in"),
    ("fast", {"depth": 3}, "has no option depth"),
    ("deep", {"widths": [32, 48, 64]}, "needs 10 positive widths"),
])
def test_bad_architecture_arguments_are_config_errors(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, **kwargs)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_save_and_load_round_trip(tmp_path, name):
    torch.manual_seed(1)
    model = build_model(name, **SMALL_WIDTHS[name])
    # Make BN running statistics non-trivial, so that buffers must be saved too.
    model.train()
    model(torch.rand(16, 1, 28, 28))
    model.eval()
    save_model(model, tmp_path / name)
    loaded = load_model(tmp_path / name)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))


def test_channels_last_model_saves_and_loads(tmp_path):
    model = build_model("fast").to(memory_format=torch.channels_last).eval()
    save_model(model, tmp_path / "cl")
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(load_model(tmp_path / "cl")(x), model(x))
