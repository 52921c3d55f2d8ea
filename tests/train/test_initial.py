"""Starting a run from a saved model (fine-tuning), and mixing font digits into the training tensors."""

from __future__ import annotations

import json

import pytest
import torch

from digitlab.errors import ConfigError, ModelError
from digitlab.models.storage import pretrained_path
from digitlab.train.config import TrainConfig
from digitlab.train.initial import initial_model
from digitlab.train.mix import mix_font_digits


@pytest.mark.parametrize("spec", [None, "pretrained"])
def test_pretrained_start_records_the_shipped_weights(spec):
    model, provenance = initial_model(spec)
    shipped = json.loads((pretrained_path() / "model.json").read_text())
    assert provenance["spec"] == "pretrained"
    assert provenance["weights_sha256"] == shipped["weights_sha256"]
    assert provenance["architecture"] == shipped["architecture"]
    assert model.training  # ready to train


def test_a_missing_model_is_a_one_line_model_error(tmp_path):
    with pytest.raises(ModelError, match="--from") as info:
        initial_model(str(tmp_path / "nowhere"))
    assert "\n" not in str(info.value)


def test_mixing_appends_balanced_font_digits_in_the_same_layout():
    x = torch.zeros(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(8, dtype=torch.long)
    mx, my = mix_font_digits(x, y, 20, seed=0)
    assert mx.shape == (28, 1, 28, 28) and my.shape == (28,)
    assert torch.equal(mx[:8], x) and float(mx[8:].max()) == 1.0 and float(mx[8:].min()) == 0.0
    assert sorted(my[8:].tolist()) == sorted(list(range(10)) * 2)
    assert mx.is_contiguous(memory_format=torch.channels_last)
    assert mix_font_digits(x, y, 0, seed=0)[0] is x


def test_synthetic_fonts_is_checked():
    with pytest.raises(ConfigError, match="synthetic fonts"):
        TrainConfig.from_flat(synthetic_fonts=-1)
