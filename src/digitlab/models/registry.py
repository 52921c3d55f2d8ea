"""Model registry: name -> factory.

A factory's keyword arguments are the architecture. They are stored in the model JSON, so a saved
model rebuilds itself from its name and arguments alone (no pickled classes).

Every model takes float32 (N, 1, 28, 28) in [0, 1] and returns logits (N, num_classes).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

from digitlab.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable
    description: str


_REGISTRY: dict[str, ModelEntry] = {}

# Modules that register models when imported. Kept as data so that listing models does not need to
# know the classes, and a missing optional module does not break the others.
_MODEL_MODULES = ("digitlab.models.mlp", "digitlab.models.cnn")


def register(name: str, description: str):
    """Decorator: register `factory` under `name`."""

    def wrap(factory):
        _REGISTRY[name] = ModelEntry(name, factory, description)
        return factory

    return wrap


def _load_all() -> None:
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def list_models() -> list[ModelEntry]:
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


def get_entry(name: str) -> ModelEntry:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown model {name!r}: choose one of {known} (see `digitlab models`)") from None


def default_kwargs(name: str) -> dict:
    """The factory's keyword defaults: the architecture a bare `build_model(name)` gets."""
    sig = inspect.signature(get_entry(name).factory)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def build_model(name: str, **kwargs):
    """Build a fresh, randomly initialised model. Unknown keyword arguments are a ConfigError."""
    entry = get_entry(name)
    allowed = set(default_kwargs(name))
    unknown = set(kwargs) - allowed
    if unknown:
        raise ConfigError(
            f"model {name!r} has no option {', '.join(sorted(unknown))}: valid options are "
            f"{', '.join(sorted(allowed)) or 'none'}"
        )
    model = entry.factory(**kwargs)
    # Recorded so that storage can save the architecture beside the weights.
    model.digitlab_arch = {"name": name, "kwargs": {**default_kwargs(name), **kwargs}}
    return model
