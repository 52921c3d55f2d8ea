"""Saving and loading models without pickle.

A saved model is two files in a folder: `model.safetensors` (the weights; a format that holds only
tensors, so loading it cannot run code) and `model.json` (the architecture name and arguments, the
classes, the preprocessing, the training config, metrics, versions and seed). Loading rebuilds the
architecture from the registry and loads the weights strictly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from digitlab import __version__
from digitlab.errors import ModelError
from digitlab.files import ensure_dir, read_json, sha256_file, write_bytes, write_json

FORMAT = "digitlab-model"
FORMAT_VERSION = 1
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
    """Write `model.safetensors` and `model.json` into folder `path`; return the folder."""
    from dataclasses import asdict, is_dataclass

    from safetensors.torch import save as serialize_safetensors

    from digitlab.provenance import environment

    arch = getattr(model, "digitlab_arch", None)
    if arch is None:
        raise ModelError("this model was not built with digitlab.build_model, so its architecture is unknown; "
                         "build it with build_model(name, ...)")
    folder = ensure_dir(path)
    # safetensors wants contiguous tensors that do not share memory (channels-last weights are not).
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Serialise in memory, then write through digitlab.files: a full disk becomes a clear OutputError
    # (safetensors' own file writer raises its own error type) and never leaves half a file.
    write_bytes(folder / WEIGHTS_NAME, serialize_safetensors(state, metadata={"format": FORMAT, "architecture": arch["name"]}))
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
        "weights_sha256": sha256_file(folder / WEIGHTS_NAME),
        "num_params": sum(p.numel() for p in model.parameters()),
        "train_config": config,
        "metrics": metrics or {},
        "history": dict(history) if history is not None else None,
        "environment": environment(),
    }
    if extra:
        meta.update(extra)
    write_json(folder / META_NAME, meta)
    return folder


def resolve_model_files(path: str | Path) -> tuple[Path, Path]:
    """Return (json, safetensors) for a run folder, a .safetensors file or a .json file."""
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
    try:
        info = read_json(meta, what="model description")
    except Exception as exc:  # DataError from read_json -> a model problem for the user
        raise ModelError(str(exc)) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelError(f"{meta} is not a digitlab model description (no format={FORMAT!r})")
    weights = meta.parent / info.get("weights", WEIGHTS_NAME) if path.suffix != ".safetensors" else path
    if not weights.exists():
        raise ModelError(f"weights file {weights} is missing: copy it beside {meta.name}")
    return meta, weights


def load_model_meta(path: str | Path) -> dict:
    meta, _ = resolve_model_files(path)
    return read_json(meta, what="model description")


def load_model(path: str | Path | None = None, device: str = "cpu"):
    """Rebuild a saved model (None = the shipped pretrained model) in eval mode.

    The returned module carries `digitlab_meta`, the JSON dict it was described by.
    """
    from safetensors.torch import load_file

    from digitlab.models.registry import build_model

    if path is None:
        path = pretrained_path()
        if not (path / META_NAME).exists():
            raise ModelError("no pretrained model ships with this installation: pass --model RUN_DIR "
                             "(train one with `digitlab train --preset best -o runs/best`)")
    meta_path, weights = resolve_model_files(path)
    meta = read_json(meta_path, what="model description")
    arch = meta.get("architecture") or {}
    if not isinstance(arch, dict) or "name" not in arch:
        raise ModelError(f"{meta_path} has no architecture name")
    model = build_model(arch["name"], **(arch.get("kwargs") or {}))
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for any malformed file
        raise ModelError(f"cannot read weights {weights}: {exc}; the file is corrupt or not safetensors") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"weights {weights} do not match architecture {arch['name']!r}: {first}") from None
    model.digitlab_meta = meta
    return model.to(device).eval()
