"""Checks on a weights file before and after it becomes tensors.

Before: the safetensors header (an 8-byte length and a JSON table of names, dtypes, shapes and offsets)
is read from the bytes and compared with the state dict the architecture has when built on the meta
device, which costs no memory. A file whose tensors are missing, extra, shaped or typed otherwise is
refused before anything is allocated for the model. After: non-finite weights are refused, since they
would make every prediction NaN ("confidence nan") without an error.
"""

from __future__ import annotations

import json

import torch

from digitlab.errors import ConfigError, ModelError
from digitlab.models.registry import build_model
from digitlab.models.schema import MAX_PARAMS

# torch dtype name -> safetensors dtype code, for the dtypes digitlab's models hold (float32 weights,
# int64 batch-norm counters).
_CODES = {"torch.float32": "F32", "torch.int64": "I64"}
_MAX_HEADER = 16 << 20


def expected_state(name: str, kwargs: dict, where: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (safetensors dtype code, shape)} of architecture `name`, built on the meta device."""
    try:
        with torch.device("meta"):
            model = build_model(name, **kwargs)
    except ConfigError as exc:
        raise ModelError(f"{where}: {exc}") from None
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_PARAMS:
        raise ModelError(f"{where}: the architecture has {params:,} parameters, over digitlab's limit of "
                         f"{MAX_PARAMS:,}; the model file is corrupt or was edited")
    return {key: (_CODES.get(str(t.dtype), str(t.dtype)), tuple(t.shape)) for key, t in model.state_dict().items()}


def read_header(blob: bytes, where: str) -> dict:
    """The safetensors header table {name: {"dtype", "shape", "data_offsets"}} (no __metadata__)."""
    if len(blob) < 8:
        raise ModelError(f"weights {where} are {len(blob)} bytes, too short for safetensors: the file is corrupt")
    size = int.from_bytes(blob[:8], "little")
    if size > min(_MAX_HEADER, len(blob) - 8):
        raise ModelError(f"weights {where} declare a {size:,}-byte header in a {len(blob):,}-byte file: "
                         "the file is corrupt or not safetensors")
    try:
        table = json.loads(blob[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"weights {where} have an unreadable header: the file is corrupt or not safetensors") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for k, v in table.items() if k != "__metadata__"):
        raise ModelError(f"weights {where} have a malformed header: the file is corrupt or not safetensors")
    table.pop("__metadata__", None)
    return table


def check_header(blob: bytes, expected: dict, where: str, arch: str) -> None:
    """Refuse weights whose tensor names, dtypes or shapes differ from the architecture's."""
    table = read_header(blob, where)
    missing, extra = sorted(set(expected) - set(table)), sorted(set(table) - set(expected))
    if missing or extra:
        what = "; ".join(part for part in (f"missing {', '.join(missing[:3])}" if missing else "",
                                           f"unexpected {', '.join(extra[:3])}" if extra else "") if part)
        raise ModelError(f"weights {where} do not match architecture {arch!r} ({what}): "
                         "the weights belong to another model")
    for key, (dtype, shape) in expected.items():
        entry = table[key]
        if entry.get("dtype") != dtype:
            raise ModelError(f"weights {where}: tensor {key} is {entry.get('dtype')}, expected {dtype} "
                             f"(digitlab models hold float32 weights); save the model with digitlab")
        found = entry.get("shape")
        if not isinstance(found, list) or tuple(found) != shape:
            raise ModelError(f"weights {where} do not match architecture {arch!r}: tensor {key} has shape "
                             f"{found}, the architecture needs {list(shape)}; the weights belong to another model")


def check_values(state: dict, where: str) -> None:
    """Refuse NaN or infinite weights."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"weights {where}: tensor {key} holds NaN or infinite values, so every prediction "
                             "would be NaN; train the model again")
