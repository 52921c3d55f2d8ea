"""The report's configuration table lists the settings a run uses, not every field of TrainConfig."""

from __future__ import annotations

from dataclasses import asdict

from digitlab.train.config import TrainConfig
from digitlab.workflows.report_sections import ALWAYS_SHOWN, settings_used


def test_only_the_defining_and_changed_settings_are_listed():
    conf = asdict(TrainConfig())
    changed = next(k for k, v in conf.items() if isinstance(v, bool) and k not in ALWAYS_SHOWN)
    conf[changed] = not conf[changed]
    shown = settings_used(conf)
    assert changed in shown
    assert {k for k in shown if k != changed} <= set(ALWAYS_SHOWN)
    assert len(shown) < len(conf) / 3


def test_a_setting_this_version_does_not_know_is_shown():
    assert settings_used({"epochs": 5, "retired_option": 3}) == {"epochs": 5, "retired_option": 3}
