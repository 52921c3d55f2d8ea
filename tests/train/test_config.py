"""TrainConfig's groups, its flat names, and both saved forms (nested, and the flat one of older files)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from digitlab.errors import ConfigError
from digitlab.models.schema import check_meta
from digitlab.models.storage import load_model, load_model_meta, pretrained_path, save_model
from digitlab.train.config import (
    FLAT_NAMES,
    GROUPS,
    AugmentationConfig,
    OptimizerConfig,
    RegularisationConfig,
    RuntimeConfig,
    ScheduleConfig,
    TrainConfig,
    flatten_settings,
)
from digitlab.train.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
# The flat form model.json and checkpoints held before the groups (the shipped model's, abridged).
OLD_FLAT = {"epochs": 40, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
            "weight_decay": 0.0005, "schedule": "onecycle", "warmup_epochs": 2, "label_smoothing": 0.1,
            "augment": "affine", "augment_options": {"rotate": 20}, "clean_epochs": 1, "teacher": "pretrained",
            "ema_decay": 0.99, "seed": 3, "device": "auto", "threads": 1, "channels_last": True, "cpu_amp": True}


def test_the_groups_and_the_flat_helper_build_the_same_config():
    grouped = TrainConfig(epochs=3, optimizer=OptimizerConfig("adam", lr=1e-3), runtime=RuntimeConfig(threads=1))
    flat = TrainConfig.from_flat(epochs=3, optimizer="adam", lr=1e-3, threads=1)
    assert grouped == flat
    assert flat.optimizer.name == "adam" and flat.optimizer.learning_rate == 1e-3 and flat.runtime.threads == 1
    assert flat.schedule == ScheduleConfig() and flat.regularisation == RegularisationConfig()


def test_every_flat_name_lands_in_its_group():
    config = TrainConfig.from_flat(**OLD_FLAT)
    assert config.optimizer == OptimizerConfig("sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0005)
    assert config.schedule == ScheduleConfig("onecycle", warmup_epochs=2)
    assert config.augmentation == AugmentationConfig("affine", options={"rotate": 20}, clean_epochs=1)
    assert config.regularisation == RegularisationConfig(label_smoothing=0.1, ema_decay=0.99, teacher="pretrained")
    assert config.runtime == RuntimeConfig(threads=1, channels_last=True, cpu_amp=True)
    assert (config.epochs, config.batch_size, config.seed) == (40, 128, 3)
    assert {k: v for k, v in config.to_flat().items() if k in OLD_FLAT} == OLD_FLAT


def test_the_flat_names_cover_every_field_once():
    targets = list(FLAT_NAMES.values())
    assert len(set(targets)) == len(targets)
    expected = {(None, f.name) for f in fields(TrainConfig) if f.name not in GROUPS}
    expected |= {(group, f.name) for group, cls in GROUPS.items() for f in fields(cls)}
    assert set(targets) == expected


def test_replace_routes_flat_names_and_swaps_whole_groups():
    base = TrainConfig.from_flat(optimizer="sgd", lr=0.1, momentum=0.5)
    changed = base.replace(lr=0.2, seed=4)
    assert changed.optimizer == OptimizerConfig("sgd", lr=0.2, momentum=0.5) and changed.seed == 4
    assert base.optimizer.lr == 0.1  # frozen: a copy
    swapped = base.replace(optimizer=OptimizerConfig("adam"))
    assert swapped.optimizer == OptimizerConfig("adam")
    assert base.replace(optimizer=OptimizerConfig("adam"), lr=0.01).optimizer == OptimizerConfig("adam", lr=0.01)


def test_to_dict_is_nested_and_both_forms_load():
    config = TrainConfig.from_flat(**OLD_FLAT)
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["optimizer"] == {**saved["optimizer"], "name": "sgd", "lr": 0.1}
    assert saved["augmentation"]["options"] == {"rotate": 20} and "lr" not in saved
    assert TrainConfig.from_dict(saved) == config
    assert TrainConfig.from_dict(OLD_FLAT) == config
    assert TrainConfig.from_dict(config.to_flat()) == config


@pytest.mark.parametrize("data, bad", [
    ({"epochs": 2, "epochz": 3}, "epochz"),
    ({"optimizer": {"name": "adam", "learning_rate": 0.1}}, "optimizer.learning_rate"),
    ({"runtime": {"lr": 0.1}}, "runtime.lr"),
])
def test_unknown_settings_are_refused_in_one_line(data, bad):
    with pytest.raises(ConfigError, match=f"^unknown training settings: {bad}$"):
        TrainConfig.from_dict(data)
    with pytest.raises(ConfigError, match="unknown training settings: retired"):
        TrainConfig.from_flat(retired=1)


@pytest.mark.parametrize("data, message", [
    (["epochs", 5], "must be a mapping of names to values, got list"),
    ({"epochs": "5"}, "a value of the wrong type"),
    ({"optimizer": {"name": "adam", "lr": "fast"}}, "a value of the wrong type"),
])
def test_a_damaged_saved_config_is_one_line(data, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize("build, message", [
    (lambda: OptimizerConfig("adagrad"), "unknown optimizer 'adagrad'"),
    (lambda: OptimizerConfig(lr=0), "learning rate must be > 0"),
    (lambda: ScheduleConfig(lr_decay=1.5), "lr decay"),
    (lambda: AugmentationConfig("none", clean_epochs=1), "set --augment too"),
    (lambda: AugmentationConfig("affine", options={"rotate": -1}), "rotate must be a finite number >= 0"),
    (lambda: RegularisationConfig(ema_decay=1.0), "EMA decay must be in"),
    (lambda: RuntimeConfig(threads=0), "threads must be >= 1"),
    (lambda: TrainConfig(epochs=2, schedule=ScheduleConfig(warmup_epochs=2)), "shorter than training"),
    (lambda: TrainConfig.from_flat(epochs=2, augment="affine", clean_epochs=2), "fewer than the epochs"),
    (lambda: TrainConfig(optimizer="adam"), "use TrainConfig.from_flat"),
])
def test_each_group_checks_its_own_fields(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_the_shipped_and_the_previous_model_load_their_configs():
    shipped = load_model_meta(pretrained_path())["train_config"]
    assert isinstance(shipped["optimizer"], dict)  # the nested form
    assert TrainConfig.from_dict(shipped).to_dict() == shipped
    previous = load_model_meta(ROOT / "bench" / "previous_model" / "model.json")["train_config"]
    assert "optimizer" in previous and not isinstance(previous["optimizer"], dict)  # the flat form of 0.1.0
    config = TrainConfig.from_dict(previous)
    assert config.optimizer.name == previous["optimizer"] and config.epochs == previous["epochs"]
    assert config.to_flat()["augment"] == previous["augment"]


def test_a_model_saved_with_the_nested_form_passes_the_schema_and_loads(tmp_path):
    from digitlab.models.registry import build_model

    config = TrainConfig.from_flat(epochs=2, optimizer="adam", augment="affine")
    save_model(build_model("mlp", hidden=8), tmp_path / "m", train_config=config)
    meta = load_model_meta(tmp_path / "m")
    check_meta(meta, "model.json")
    assert TrainConfig.from_dict(meta["train_config"]) == config
    assert load_model(tmp_path / "m").digitlab_meta["train_config"]["optimizer"]["name"] == "adam"


def test_flatten_settings_reads_both_forms_and_keeps_unknown_keys():
    nested = TrainConfig.from_flat(augment="affine", val_split=10).to_dict()
    assert flatten_settings(nested) == TrainConfig.from_flat(augment="affine", val_split=10).to_flat()
    assert flatten_settings({"augment": "affine", "retired": 1}) == {"augment": "affine", "retired": 1}


def test_every_preset_builds_through_the_flat_names():
    for name, preset in PRESETS.items():
        config = TrainConfig.from_flat(**preset["config"])
        assert {k: v for k, v in config.to_flat().items() if k in preset["config"]} == preset["config"], name


def test_every_training_flag_is_a_flat_name():
    from digitlab.cli.train import BOOL_FLAGS, CONFIG_FLAGS

    assert set(CONFIG_FLAGS) | set(BOOL_FLAGS) <= set(FLAT_NAMES)
