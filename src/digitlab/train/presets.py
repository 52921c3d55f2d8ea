"""Presets: tuned settings held as data.

Each preset names a model (and its architecture arguments) and the TrainConfig fields it sets.
Settings are chosen on a validation split carved from the training set; the test set only reports.
`digitlab train --preset NAME` starts from these; any flag given on the command line wins.
"""

from __future__ import annotations

from digitlab.errors import ConfigError

PRESETS: dict[str, dict] = {
    # The tutorial's setup, for reference.
    "article": {
        "model": "mlp",
        "model_kwargs": {},
        "config": {"epochs": 5, "batch_size": 128, "optimizer": "rmsprop"},
        "description": "the article's mlp: rmsprop, 5 epochs, batch 128",
    },
}


def get_preset(name: str) -> dict:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(sorted(PRESETS))}") from None
