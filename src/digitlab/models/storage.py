"""Saving and loading models without pickle.

A saved model is two files in a folder: `model.safetensors` (the weights; a format that holds only
tensors, so loading it cannot run code) and `model.json` (the architecture name and arguments, the
classes, the preprocessing, the training config, metrics, versions and seed). Loading checks model.json against its schema (models/schema.py), reads the weights from the
model's own folder only, checks their recorded SHA-256 (a torn save or a swapped file is refused), checks
the safetensors header's names, shapes and dtypes against the architecture built on the meta device
(no memory), and only then allocates, loads strictly and refuses non-finite weights.

Saving writes the weights first and model.json (with the weights' hash) last, each atomically: a save
killed part-way leaves the old pair, the new pair, or new weights beside the old model.json, which the
hash check refuses with one line. Temporary files of a killed save are removed by the next save.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_safetensors, save as serialize_safetensors

from digitlab import __version__
from digitlab.errors import ModelError
from digitlab.files import ensure_dir, read_json, remove_temp_leftovers, sha256_file, write_bytes, write_json
from digitlab.models.registry import build_model
from digitlab.models.schema import FORMAT, FORMAT_VERSION, check_meta
from digitlab.models.weights_check import check_header, check_values, expected_state
from digitlab.provenance import environment

WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"

# What every model expects; recorded in the JSON so that other runtimes (ONNX, the web page) can
# prepare inputs the same way.
PREPROCESSING = {
    "input_shape": [1, 28, 28],
    "dtype": "float32",
    "scale": "pixel / 255, range [0, 1]",
    "polarity": "white ink on black background, as MNIST",
    "output": "logits (apply softmax for probabilities)",
}


def pretrained_path() -> Path:
    """The folder of the model that ships inside the package."""
    return Path(__file__).resolve().parent.parent / "pretrained"


def save_model(
    model,
    path: str | Path,
    *,
    history=None,
    metrics: dict | None = None,
    train_config=None,
    classes: tuple[str, ...] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `model.safetensors`, then `model.json` (recording the weights' SHA-256), into folder `path`."""
    arch = getattr(model, "digitlab_arch", None)
    if arch is None:
        raise ModelError("this model was not built with digitlab.build_model, so its architecture is unknown; "
                         "build it with build_model(name, ...)")
    folder = ensure_dir(path)
    remove_temp_leftovers(folder, (WEIGHTS_NAME, META_NAME))  # what a killed save left behind
    # safetensors wants contiguous tensors that do not share memory (channels-last weights are not).
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Serialise in memory, then write through digitlab.files: a full disk becomes a clear OutputError
    # (safetensors' own file writer raises its own error type) and never leaves half a file.
    weights = serialize_safetensors(state, metadata={"format": FORMAT, "architecture": arch["name"]})
    config = asdict(train_config) if is_dataclass(train_config) else train_config
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "digitlab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "architecture": arch,
        "classes": list(classes) if classes else [str(i) for i in range(arch["kwargs"].get("num_classes", 10))],
        "preprocessing": PREPROCESSING,
        "weights": WEIGHTS_NAME,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "train_config": config,
        "metrics": metrics or {},
        "history": dict(history) if history is not None else None,
        "environment": environment(),
    }
    if extra:
        meta.update(extra)
    write_bytes(folder / WEIGHTS_NAME, weights)
    write_json(folder / META_NAME, meta)  # last: it commits the pair
    return folder


def resolve_model_files(path: str | Path) -> tuple[Path, Path]:
    """Return (json, safetensors) for a run folder, a .safetensors file or a .json file.

    model.json is checked against its schema; the weights must be a regular file in its folder."""
    meta, weights, _ = _resolve(path)
    return meta, weights


def _resolve(path: str | Path) -> tuple[Path, Path, dict]:
    path = Path(path)
    if path.is_dir():
        meta = path / META_NAME
        if not meta.exists():
            raise ModelError(f"{path} holds no {META_NAME}: point at a folder written by `digitlab train`")
    elif path.suffix == ".safetensors":
        meta = path.with_suffix(".json")
    elif path.suffix == ".json":
        meta = path
    elif not path.exists():
        raise ModelError(f"model not found: {path} (give a run folder, a .safetensors or a model .json file)")
    else:
        raise ModelError(f"{path} is not a digitlab model: give a run folder, a .safetensors or a model .json file")
    if not meta.exists():
        raise ModelError(f"model description {meta} is missing: it must sit beside the weights")
    if not meta.is_file():
        raise ModelError(f"model description {meta} is not a regular file: point at a run folder")
    if meta.stat().st_size > 16 << 20:
        raise ModelError(f"model description {meta} is over 16 MB, too big for a model.json: the file is corrupt")
    try:
        info = read_json(meta, what="model description")
    except Exception as exc:  # DataError from read_json -> a model problem for the user
        raise ModelError(str(exc)) from None
    check_meta(info, str(meta))
    weights = meta.parent / info.get("weights", WEIGHTS_NAME) if path.suffix != ".safetensors" else path
    if not weights.exists():
        raise ModelError(f"weights file {weights} is missing: copy it beside {meta.name}")
    if not weights.is_file() or weights.resolve().parent != meta.resolve().parent:
        raise ModelError(f"weights file {weights} must be a regular file in the folder of {meta.name}; "
                         "the weights are read from the model's own folder only")
    return meta, weights, info


def load_model_meta(path: str | Path) -> dict:
    """model.json of a run folder or model file, checked against its schema."""
    return _resolve(path)[2]


def load_model(path: str | Path | None = None, device: str = "cpu"):
    """Rebuild a saved model (None = the shipped pretrained model) in eval mode.

    The returned module carries `digitlab_meta`, the JSON dict it was described by.
    """
    if path is None:
        path = pretrained_path()
        if not (path / META_NAME).exists():
            raise ModelError("no pretrained model ships with this installation: pass --model RUN_DIR "
                             "(train one with `digitlab train --preset best -o runs/best`)")
    meta_path, weights, meta = _resolve(path)
    arch = meta["architecture"]
    kwargs = arch.get("kwargs") or {}
    expected = expected_state(arch["name"], kwargs, str(meta_path))  # on the meta device: no memory
    limit = 8 + (16 << 20) + sum(8 * _count(shape) for _, shape in expected.values())
    if weights.stat().st_size > limit:
        raise ModelError(f"weights {weights} are {weights.stat().st_size:,} bytes, more than architecture "
                         f"{arch['name']!r} can hold: the weights belong to another model or the file is corrupt")
    try:
        blob = weights.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read weights {weights}: {exc.strerror or exc}") from None
    check_header(blob, expected, str(weights), arch["name"])
    recorded = meta.get("weights_sha256")
    if recorded is not None:
        if hashlib.sha256(blob).hexdigest() != recorded:
            raise ModelError(f"weights {weights} do not match the weights_sha256 recorded in {meta_path.name} "
                             "(the file is corrupt, was replaced, or a save was interrupted): save or train the model again")
    try:
        state = load_safetensors(blob)
    except Exception as exc:  # safetensors raises its own error type for any malformed file
        raise ModelError(f"cannot read weights {weights}: {exc}; the file is corrupt or not safetensors") from None
    check_values(state, str(weights))
    model = build_model(arch["name"], **kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"weights {weights} do not match architecture {arch['name']!r}: {first}") from None
    model.digitlab_meta = meta
    return model.to(device).eval()


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
