"""The schema of model.json, checked before anything is built or allocated.

A model file can come from anywhere (a download, a colleague, an attacker), so every field that drives
loading is checked for type and range: the format, the architecture and each of its arguments (with
upper bounds, so that no file can make digitlab allocate gigabytes), the class names, the weights file
(a bare file name: the weights are read from the model's own folder only) and its SHA-256. Each problem
is one ModelError naming the field and the fix. Fields that only describe the run (metrics, history,
environment, ...) are checked for their container type only.
"""

from __future__ import annotations

import re
from typing import Any

from digitlab.errors import ModelError

FORMAT = "digitlab-model"
FORMAT_VERSION = 1
MAX_CLASSES = 1000
MAX_WIDTH = 1024  # channels of a convolution stage
MAX_HIDDEN = 16384  # the mlp's hidden units: 12.9M parameters, 52 MB of float32
MAX_PARAMS = 50_000_000  # 200 MB of float32: far above any digitlab model, far below harm
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIX = "the model file is corrupt or was edited; train the model again or restore the file"


def _fail(where: str, field: str, problem: str) -> ModelError:
    return ModelError(f"{where}: {field} {problem}; {_FIX}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(where, field, value, low, high):
    if not _is_int(value) or not low <= value <= high:
        raise _fail(where, field, f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def _probability(where, field, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _fail(where, field, f"must be a number in [0, 1), got {value!r}")
    return value


def _widths(n):
    def check(where, field, value):
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise _fail(where, field, f"must be a list of {n} whole numbers, got {value!r}")
        for i, width in enumerate(value):
            _int(where, f"{field}[{i}]", width, 1, MAX_WIDTH)
        return value
    return check


def _input_width(where, field, value):
    return value if value is None else _int(where, field, value, 4, 28)


def _classes(where, field, value):
    return _int(where, field, value, 2, MAX_CLASSES)


def _hidden(where, field, value):
    return _int(where, field, value, 1, MAX_HIDDEN)


def _dropout(where, field, value):
    return _probability(where, field, value)


# architecture name -> {argument: check}. tests/models/test_model_file_validation.py holds these to the
# registry's factories, so that a new model or argument cannot be loaded unchecked.
ARGUMENTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": _hidden, "num_classes": _classes, "dropout": _dropout},
    "cnn": {"filters": _widths(2), "dropout": _dropout, "num_classes": _classes},
    "fast": {"widths": _widths(3), "num_classes": _classes, "input_width": _input_width},
    "best": {"widths": _widths(3), "dropout": _dropout, "head_dropout": _dropout, "num_classes": _classes,
             "input_width": _input_width},
    "deep": {"widths": _widths(10), "num_classes": _classes, "input_width": _input_width},
}

# Descriptive fields: only their container type is checked (None allowed).
_DESCRIPTIVE = {"preprocessing": dict, "train_config": dict, "metrics": dict, "history": dict,
                "environment": dict, "digitlab_version": str, "created": str, "preset": str,
                "temperature_scaling": dict, "teacher": (dict, str)}


def check_architecture(arch, where: str) -> tuple[str, dict]:
    """(name, kwargs) of a model.json "architecture" entry, every argument checked."""
    if not isinstance(arch, dict):
        raise _fail(where, "architecture", f"must be an object with name and kwargs, got {type(arch).__name__}")
    unknown = set(arch) - {"name", "kwargs"}
    if unknown:
        raise _fail(where, "architecture", f"has unknown keys {', '.join(sorted(unknown))} (known: name, kwargs)")
    name, kwargs = arch.get("name"), arch.get("kwargs", {})
    if name not in ARGUMENTS:
        raise _fail(where, "architecture.name", f"is {name!r}, not a known model ({', '.join(sorted(ARGUMENTS))})")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise _fail(where, "architecture.kwargs", f"must be an object of arguments, got {type(kwargs).__name__}")
    checks = ARGUMENTS[name]
    unknown = set(kwargs) - set(checks)
    if unknown:
        raise _fail(where, "architecture.kwargs", f"has unknown arguments {', '.join(sorted(unknown))} for "
                                                   f"{name!r} (known: {', '.join(checks)})")
    for key, value in kwargs.items():
        checks[key](where, f"architecture.kwargs.{key}", value)
    return name, dict(kwargs)


def check_meta(meta, where: str) -> dict:
    """Check a parsed model.json; return it unchanged. `where` names the file in the messages."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{where} is not a digitlab model description (no format={FORMAT!r})")
    version = meta.get("format_version", FORMAT_VERSION)
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise _fail(where, "format_version", f"must be 1 to {FORMAT_VERSION}, got {version!r} "
                                             "(a newer digitlab may read it)")
    _, kwargs = check_architecture(meta.get("architecture"), where)
    classes = meta.get("classes")
    if classes is not None:
        if (not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES
                or not all(isinstance(c, str) and len(c) <= 200 for c in classes)):
            raise _fail(where, "classes", f"must be a list of 2 to {MAX_CLASSES} names (strings)")
        expected = kwargs.get("num_classes", 10)
        if len(classes) != expected:
            raise _fail(where, "classes", f"names {len(classes)} classes but the architecture has {expected}")
    weights = meta.get("weights", "model.safetensors")
    if (not isinstance(weights, str) or not weights.endswith(".safetensors") or weights != weights.strip()
            or "/" in weights or "\\" in weights or weights.startswith(".") or "\0" in weights):
        raise ModelError(f"{where}: weights must be the name of a .safetensors file beside model.json "
                         f"(no folders), got {weights!r}; the weights are read from the model's own folder only")
    digest = meta.get("weights_sha256")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
        raise _fail(where, "weights_sha256", "must be 64 lower-case hex digits")
    num_params = meta.get("num_params")
    if num_params is not None:
        _int(where, "num_params", num_params, 0, MAX_PARAMS)
    for key, kind in _DESCRIPTIVE.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise _fail(where, key, f"has the wrong type ({type(meta[key]).__name__})")
    return meta
