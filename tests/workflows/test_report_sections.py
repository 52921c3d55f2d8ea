"""The report's configuration table lists the settings a run uses, not every field of TrainConfig."""

from __future__ import annotations

from digitlab.train.config import TrainConfig
from digitlab.workflows.report_sections import settings_used

DEFINING = {"epochs": 5, "batch_size": 128, "optimizer.name": "rmsprop", "optimizer.lr": None, "seed": 0}


def test_only_the_defining_and_changed_settings_are_listed():
    config = TrainConfig.from_flat(keep_best=True, val_split=100, label_smoothing=0.1, threads=1)
    changed = {"keep_best": True, "val_split": 100, "regularisation.label_smoothing": 0.1, "runtime.threads": 1}
    assert settings_used(config.to_dict()) == {**DEFINING, **changed}
    assert settings_used(TrainConfig().to_dict()) == DEFINING


def test_a_run_saved_in_the_flat_form_gets_the_same_rows():
    config = TrainConfig.from_flat(augment="affine", augment_options={"rotate": 20}, lr=0.01)
    assert settings_used(config.to_flat()) == settings_used(config.to_dict())
    assert settings_used(config.to_flat())["augmentation.options"] == {"rotate": 20}


def test_a_setting_this_version_does_not_know_is_shown():
    assert settings_used({"epochs": 5, "retired_option": 3}) == {"epochs": 5, "retired_option": 3}
    assert settings_used({"optimizer": {"name": "sgd", "retired": 1}}) == {"optimizer.name": "sgd",
                                                                             "optimizer.retired": 1}
