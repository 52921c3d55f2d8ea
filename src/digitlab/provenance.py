"""Where a result came from: versions, commit, device, threads. Saved with every model and result."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

_PACKAGES = ("digitlab", "torch", "numpy", "scikit-learn", "onnxruntime", "ray")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the digitlab checkout, or 'unknown' for an installed wheel."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=here, capture_output=True, text=True, timeout=5)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: str | None = None) -> dict:
    """Versions, commit, machine, CPU count and torch threads (torch only if already imported)."""
    env = {
        "commit": git_commit(),
        "versions": versions(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        if device is None:
            device = "cpu"
        if str(device).startswith("cuda") and torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    if device is not None:
        env["device"] = str(device)
    return env
