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


def keras_reference(what: str, python: str | None, data_dir: str | None = None, repeats: int = 1,
                    threads: int | None = None) -> dict | None:
    """Time the article's Keras code on this machine (bench/keras_reference.py) under `python`, a
    Python with TensorFlow and Keras; None when no such Python is given. `what` is "fit" or "cv";
    with repeats > 1 (fit only) the fastest of that many runs is reported, as the digitlab side does;
    `threads` caps TensorFlow's threads as --threads caps torch's."""
    import subprocess

    python = python or os.environ.get("DIGITLAB_KERAS_PYTHON")
    if not python:
        return None
    if data_dir is None:
        data_dir = str(Path(os.environ.get("DIGITLAB_DATA_DIR", "../shared/data")) / "mnist")
    script = Path(__file__).resolve().parent / "keras_reference.py"
    command = [python, str(script), what, "--data-dir", data_dir]
    if repeats > 1:
        command += ["--repeats", str(repeats)]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"keras reference failed (exit {done.returncode}): {tail[0]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def with_one_line_errors(script: str, body, args) -> int:
    """Run body(args); a DigitlabError (a bad preset, device or data folder) becomes one line on stderr and
    exit 2, not a traceback."""
    from digitlab.errors import DigitlabError

    try:
        return body(args)
    except DigitlabError as e:
        print(f"{script}: error: {e}", file=sys.stderr)
        return 2


def emit_json(figures: dict) -> None:
    print(json.dumps(figures, sort_keys=True))


def plain_pytorch_epoch(model, opt, loss_fn, loader) -> tuple[float, float]:
    """One epoch as a PyTorch user writes it (the baselines' loop): per-batch `.item()` included.

    Returns (mean loss, accuracy) over the epoch.
    """
    loss_sum, correct, total = 0.0, 0, 0
    for xb, yb in loader:
        opt.zero_grad()
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(yb)
        correct += (out.argmax(1) == yb).sum().item()
        total += len(yb)
    return loss_sum / total, correct / total


def _whole_number(text: str, least: int) -> int:
    """A whole number >= least, or argparse's one-line error (exit 2)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts (workers, seeds, steps): a whole number >= 1."""
    return _whole_number(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type for a first seed or an offset: a whole number >= 0."""
    return _whole_number(text, 0)


def positive_seconds(text: str) -> float:
    """argparse type for a time budget in seconds: a finite number > 0, else argparse's one-line error, exit 2."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value
