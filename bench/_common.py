"""Shared bench helpers: the setup header and the final JSON line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def setup_lines(device: str = "cpu") -> dict:
    import torch

    from digitlab.provenance import environment

    env = environment(device)
    env["torch_threads"] = torch.get_num_threads()
    env["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print("setup: " + ", ".join(f"{k}={v}" for k, v in env.items() if k != "versions"))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    return env


def emit_json(figures: dict) -> None:
    print(json.dumps(figures, sort_keys=True))
