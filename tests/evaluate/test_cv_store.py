"""The fold cache's key: what decides whether a saved fold is reused."""

from __future__ import annotations

import numpy as np

from digitlab.evaluate.cv_store import task_key
from digitlab.evaluate.folds import FoldTask
from digitlab.train.config import TrainConfig

# The key of this task as stores written before TrainConfig had groups hold it (the flat settings).
EARLIER_KEY = "5e124471ab0e6789daf58987fa42a5e1d56db35ca02623c04bf1dcc58cf89c06"


def _task(**settings) -> FoldTask:
    idx = np.arange(10)
    config = TrainConfig.from_flat(epochs=2, lr=0.01, augment="affine", augment_options={"rotate": 5}, seed=3)
    return FoldTask(0, idx, idx + 10, "mlp", {"hidden": 8}, config.replace(**settings))


def test_folds_cached_before_the_config_groups_are_still_found():
    assert task_key(_task(), reuse_model=False) == EARLIER_KEY


def test_any_setting_and_the_protocol_change_the_key():
    assert task_key(_task(lr=0.02), False) != EARLIER_KEY
    assert task_key(_task(), reuse_model=True) != EARLIER_KEY
    assert task_key(_task(blend_start=0.5), False) != EARLIER_KEY  # a newer setting, once set, counts too
