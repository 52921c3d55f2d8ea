"""Presets are data: each builds its model and a valid config, and command-line flags override them."""

from __future__ import annotations

import pytest

from digitlab.cli.main import build_parser
from digitlab.cli.train import resolve_config
from digitlab.errors import ConfigError
from digitlab.models.registry import build_model
from digitlab.train.config import TrainConfig
from digitlab.train.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_builds_its_model_and_a_valid_config(name):
    preset = get_preset(name)
    model = build_model(preset["model"], **preset["model_kwargs"])
    assert model.digitlab_arch["name"] == preset["model"]
    TrainConfig.from_dict(preset["config"])  # its __post_init__ checks every setting
    assert preset["description"]


def test_the_required_presets_exist_and_keep_their_models():
    assert {"article", "fast", "best"} <= set(PRESETS)
    assert (PRESETS["article"]["model"], PRESETS["fast"]["model"], PRESETS["best"]["model"]) == ("mlp", "fast", "best")


def test_best_preset_fits_the_shipped_model_budget():
    preset = get_preset("best")
    params = sum(p.numel() for p in build_model(preset["model"], **preset["model_kwargs"]).parameters())
    assert params <= 1_200_000  # under 5 MB of float32 safetensors


def _args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_cli_preset_gives_the_preset_settings():
    model, kwargs, config = resolve_config(_args("--preset", "fast"))
    assert model == "fast" and kwargs == {}
    expected = TrainConfig.from_dict({**PRESETS["fast"]["config"], "device": "auto", "threads": None})
    assert config == expected


def test_cli_flags_override_the_preset():
    _, _, config = resolve_config(_args("--preset", "best", "--epochs", "3", "--augment", "affine", "--seed", "4"))
    assert (config.epochs, config.augmentation.name, config.seed) == (3, "affine", 4)
    assert config.optimizer.name == PRESETS["best"]["config"]["optimizer"]  # the rest is the preset's


def test_cli_model_arg_overrides_preset_architecture():
    model, kwargs, _ = resolve_config(_args("--preset", "fast-99.5", "--model-arg", "widths=[8,16,32]"))
    assert model == "fast" and kwargs == {"widths": [8, 16, 32]}


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown preset 'fastest': choose one of"):
        get_preset("fastest")
