"""`digitlab models`: each model with the presets that train it, so `--model fast` is not taken for the recipe."""

from __future__ import annotations

import argparse

from digitlab.cli import models as models_cli


def test_listing_names_the_presets_built_on_each_model(capsys):
    assert models_cli.run(argparse.Namespace(name=None)) == 0
    lines = capsys.readouterr().out.splitlines()
    fast = next(i for i, line in enumerate(lines) if line.startswith("fast "))
    assert "41,450 params" in lines[fast]
    assert lines[fast + 1].split()[0] == "presets:" and "fast" in lines[fast + 1].replace(",", " ").split()
    assert any("--preset fast" in line for line in lines[fast + 2:])


def test_presets_by_model_covers_every_preset():
    from digitlab.train.presets import PRESETS

    by_model = models_cli.presets_by_model()
    assert sorted(name for names in by_model.values() for name in names) == sorted(PRESETS)
    assert by_model["mlp"] == ["article"]
