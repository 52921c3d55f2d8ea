"""Preset resolution: a preset, a model name and explicit settings -> (model, model_kwargs, TrainConfig).

The presets themselves are data in digitlab.train.presets. Here they meet the user's choices: a preset
gives the starting values, an explicit setting wins over it, and everything is checked before any data
is loaded or any training starts.
"""

from __future__ import annotations

from digitlab.errors import ConfigError, ModelError
from digitlab.models.registry import default_kwargs
from digitlab.models.storage import resolve_model_files
from digitlab.train.config import TrainConfig
from digitlab.train.presets import get_preset


def check_model(model: str, model_kwargs: dict) -> None:
    """Fail on an unknown model or architecture argument, with the valid ones named."""
    unknown = set(model_kwargs) - set(default_kwargs(model))  # an unknown model name raises here
    if unknown:
        raise ConfigError(f"model {model!r} has no option {', '.join(sorted(unknown))}: valid options are "
                          f"{', '.join(sorted(default_kwargs(model))) or 'none'}")


def resolve_config(preset: str | None = None, model: str | None = None, *, model_kwargs: dict | None = None,
                   settings: dict | None = None, augment_options: dict | None = None,
                   default_model: str = "mlp") -> tuple[str, dict, TrainConfig]:
    """Merge a preset's values and explicit choices into (model_name, model_kwargs, TrainConfig).

    preset: a name from digitlab.train.presets (None = none). model: overrides the preset's model; a
    different model drops the preset's architecture arguments, which belong to its own model.
    model_kwargs: architecture arguments over those. settings: flat TrainConfig names (`lr`, `augment`, ...;
    see digitlab.train.config.FLAT_NAMES) over the preset's
    (None values are ignored, so unset command-line flags can be passed as they are). augment_options:
    augmentation strengths over the preset's, key by key.
    """
    name, kwargs, values = default_model, {}, {}
    if preset:
        chosen = get_preset(preset)
        name, kwargs, values = chosen["model"], dict(chosen["model_kwargs"]), dict(chosen["config"])
    if model:
        if model != name:
            kwargs = {}
        name = model
    kwargs.update(model_kwargs or {})
    check_model(name, kwargs)
    values.update({k: v for k, v in (settings or {}).items() if v is not None})
    if augment_options:
        values["augment_options"] = {**(values.get("augment_options") or {}), **augment_options}
    if (settings or {}).get("compile_mode"):
        values["compile"] = True  # a mode says which compilation, so it asks for one
    teacher = values.get("teacher")
    if teacher not in (None, "pretrained"):
        try:  # a missing teacher fails now, not after the data loads
            resolve_model_files(teacher)
        except ModelError as exc:
            raise ModelError(f"--teacher: {exc}") from None
    return name, kwargs, TrainConfig.from_flat(**values)
