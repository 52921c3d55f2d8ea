"""Preset resolution from Python: a preset's values, explicit settings over them, checked up front."""

from __future__ import annotations

import pytest

from digitlab.errors import ConfigError, ModelError
from digitlab.train.presets import get_preset
from digitlab.workflows.presets import resolve_config


def test_a_preset_gives_its_model_and_settings_and_explicit_settings_win():
    preset = get_preset("fast")
    model, kwargs, config = resolve_config("fast", settings={"epochs": 3, "seed": None})
    assert (model, kwargs) == (preset["model"], preset["model_kwargs"])
    assert config.epochs == 3 and config.optimizer.lr == preset["config"]["lr"]
    assert config.seed == 0  # None means "not given": the default stays


def test_another_model_drops_the_presets_architecture_arguments():
    assert get_preset("compact")["model_kwargs"]  # the premise: this preset sets some
    model, kwargs, _ = resolve_config("compact", "mlp")
    assert (model, kwargs) == ("mlp", {})
    _, kwargs, _ = resolve_config(None, "mlp", model_kwargs={"hidden": 64})
    assert kwargs == {"hidden": 64}


def test_augmentation_strengths_merge_key_by_key_and_a_compile_mode_asks_for_compile():
    _, _, config = resolve_config(None, settings={"augment": "affine"}, augment_options={"rotate": 20})
    assert config.augmentation.options == {"rotate": 20}
    _, _, config = resolve_config(None, settings={"compile_mode": "max-autotune"})
    assert config.runtime.compile and config.runtime.compile_mode == "max-autotune"


@pytest.mark.parametrize("call, error, match", [
    (lambda: resolve_config(None, "mlp", model_kwargs={"width": 3}), ConfigError, "has no option width"),
    (lambda: resolve_config("no-such-preset"), ConfigError, "no-such-preset"),
    (lambda: resolve_config(None, settings={"teacher": "/no/such/run"}), ModelError, "^--teacher: "),
    (lambda: resolve_config(None, settings={"epochs": 0}), ConfigError, "epochs must be >= 1"),
])
def test_bad_choices_fail_before_any_training(call, error, match):
    with pytest.raises(error, match=match):
        call()
