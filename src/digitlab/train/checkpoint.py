"""Resumable training: a checkpoint after every N epochs, and resuming from the last complete one.

Layout (the newest K are kept):

    RUN_DIR/checkpoints/epoch-0003/model.safetensors           the model's state_dict
    RUN_DIR/checkpoints/epoch-0003/training_state.safetensors  optimizer, scheduler, RNG and best-weight tensors
    RUN_DIR/checkpoints/epoch-0003/checkpoint.json             everything else + SHA-256 of both files

No pickle: state dicts are split into their tensors (safetensors, flattened dotted keys) and a JSON
tree in which each tensor is replaced by {"__tensor__": key}. Each checkpoint is written into a
hidden temporary folder (every file fsync'ed, the JSON last) which is then renamed to epoch-NNNN, so
a crash leaves either a complete checkpoint or a hidden leftover that is never read. Reading checks
the JSON and both files' SHA-256; a checkpoint that fails is skipped with a reason.

Resuming restores the model, its weight average (EMA) if any, optimizer, scheduler, torch's global
CPU RNG (dropout), the loop's generator (shuffling, augmentation), numpy's RNG, the history, the epoch
and the best-epoch bookkeeping, so that on CPU with the same thread count a resumed run ends with
weights bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from digitlab.errors import ConfigError, DataError
from digitlab.files import ensure_dir, fsync_dir, output_error, read_json, sha256_file, write_bytes, write_json
from digitlab.train.callbacks import Callback
from digitlab.train.config import TrainConfig, flatten_settings
from digitlab.train.history import History

FORMAT = "digitlab-checkpoint"
FORMAT_VERSION = 1
FOLDER = "checkpoints"
MODEL_FILE = "model.safetensors"
STATE_FILE = "training_state.safetensors"
MARKER = "checkpoint.json"  # written last: its presence (with matching hashes) commits the checkpoint
# Settings (flat names) that may differ between the interrupted and the resumed process without changing
# the maths.
RUNTIME_FIELDS = ("device", "threads")


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FOLDER


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


# --- state dicts <-> (tensors, JSON) ------------------------------------------------------------

def encode_tree(obj: Any, prefix: str, tensors: dict) -> Any:
    """Replace every tensor in a nested state dict by {"__tensor__": key}, collecting it in `tensors`.

    Dicts with int keys (optimizer state) and tuples (Adam's betas) are tagged so they decode back to
    the same types.
    """
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj)
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode_tree(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        if all(isinstance(k, int) for k in obj):
            return {"__int_keys__": {str(k): encode_tree(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}}
        raise TypeError(f"cannot store a dict with mixed keys at {prefix}")
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a checkpoint")


def decode_tree(obj: Any, tensors: dict) -> Any:
    """The inverse of `encode_tree`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__int_keys__" in obj:
            return {int(k): decode_tree(v, tensors) for k, v in obj["__int_keys__"].items()}
        if "__tuple__" in obj:
            return tuple(decode_tree(v, tensors) for v in obj["__tuple__"])
        return {k: decode_tree(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_tree(v, tensors) for v in obj]
    return obj


def _rng_state(generator) -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state(),
             "numpy": {"name": name, "keys": keys, "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict, generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- writing ------------------------------------------------------------------------------------

def write_checkpoint(run_dir: str | os.PathLike, state, extra: dict | None = None) -> Path:
    """Write the loop's TrainState as RUN_DIR/checkpoints/epoch-NNNN, atomically; return the folder."""
    root = ensure_dir(checkpoint_dir(run_dir))
    final = root / checkpoint_name(state.epoch)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    except OSError as exc:
        raise output_error(final, exc) from None
    try:
        model = {k: v.detach().cpu().contiguous().clone() for k, v in state.model.state_dict().items()}
        tensors: dict = {}
        tree = {
            "optimizer": encode_tree(state.optimizer.state_dict(), "optimizer", tensors),
            "scheduler": encode_tree(state.scheduler.state_dict(), "scheduler", tensors),
            "rng": encode_tree(_rng_state(state.generator), "rng", tensors),
            "best_weights": encode_tree(state.best_weights, "best", tensors),
            "ema": encode_tree(state.ema.state_dict(), "ema", tensors) if state.ema is not None else None,
        }
        # Serialise in memory and write through Python's file API: safetensors' own file writer
        # reports a full disk as SafetensorError, not OSError, which would escape as a traceback.
        write_bytes(tmp / MODEL_FILE, save(model, metadata={"format": FORMAT}))
        write_bytes(tmp / STATE_FILE, save(tensors, metadata={"format": FORMAT}))
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "epoch": state.epoch,
            "steps_per_epoch": state.steps_per_epoch,
            "architecture": getattr(state.model, "digitlab_arch", None),
            "config": state.config.to_dict(),
            "history": {k: list(v) for k, v in state.history.items()},
            "best_val_loss": state.best_val_loss, "best_epoch": state.best_epoch,
            "epochs_without_improvement": state.epochs_without_improvement,
            "stop_training": state.stop_training,
            "files": {MODEL_FILE: sha256_file(tmp / MODEL_FILE), STATE_FILE: sha256_file(tmp / STATE_FILE)},
            "extra": extra or {},
            **tree,
        }
        write_json(tmp / MARKER, meta)  # the commit marker: last file in
        if final.exists():  # an incomplete or older copy of this epoch: move it aside first
            _discard(final)
        os.rename(tmp, final)
        fsync_dir(root)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise output_error(final, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _discard(folder: Path) -> None:
    # Rename before deleting, so a crash mid-delete leaves a hidden folder, not a damaged epoch-NNNN.
    trash = folder.with_name(f".{folder.name}.{os.getpid()}.trash")
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Keep the newest `keep` checkpoints; delete older ones and leftovers of interrupted writes."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return
    for leftover in root.glob(".epoch-*"):  # hidden temp/trash folders of interrupted writes
        shutil.rmtree(leftover, ignore_errors=True)
    for old in sorted(root.glob("epoch-*"))[:-keep] if keep > 0 else []:
        try:
            _discard(old)
        except OSError as exc:
            raise output_error(old, exc) from None


# --- reading ------------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """A verified checkpoint read from disk. `meta` is checkpoint.json; tensors are on the CPU."""

    folder: Path
    meta: dict
    model_state: dict
    tensors: dict = field(repr=False, default_factory=dict)

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.meta["config"])

    @property
    def extra(self) -> dict:
        return self.meta.get("extra") or {}

    def restore(self, state) -> None:
        """Put the saved training state into the loop's TrainState (called in on_train_begin)."""
        # Flat names on both sides: a checkpoint may hold the flat form written before the groups.
        saved = {k: v for k, v in flatten_settings(self.meta["config"]).items() if k not in RUNTIME_FIELDS}
        now = state.config.to_flat()
        changed = sorted(k for k in saved if saved[k] != now.get(k))
        if changed:
            raise ConfigError(f"checkpoint {self.folder} was trained with different settings "
                              f"({', '.join(changed)}): resume with the saved settings")
        if self.meta["steps_per_epoch"] != state.steps_per_epoch:
            raise ConfigError(f"checkpoint {self.folder} had {self.meta['steps_per_epoch']} steps per epoch, "
                              f"this run has {state.steps_per_epoch}: resume on the same data")
        state.model.load_state_dict({k: v.to(state.device) for k, v in self.model_state.items()})
        state.optimizer.load_state_dict(decode_tree(self.meta["optimizer"], self.tensors))
        state.scheduler.load_state_dict(decode_tree(self.meta["scheduler"], self.tensors))
        _restore_rng(decode_tree(self.meta["rng"], self.tensors), state.generator)
        best = decode_tree(self.meta["best_weights"], self.tensors)
        state.best_weights = {k: v.to(state.device) for k, v in best.items()} if best else None
        if state.ema is not None:
            if not self.meta.get("ema"):  # an older checkpoint, from before the setting existed
                raise ConfigError(f"checkpoint {self.folder} was trained without --ema-decay: resume with the "
                                  "saved settings")
            state.ema.load_state_dict({k: v.to(state.device) for k, v in
                                       decode_tree(self.meta["ema"], self.tensors).items()})
        state.epoch = self.epoch
        state.history = History({k: list(v) for k, v in self.meta["history"].items()})
        state.best_val_loss = float(self.meta["best_val_loss"])
        state.best_epoch = int(self.meta["best_epoch"])
        state.epochs_without_improvement = int(self.meta["epochs_without_improvement"])
        state.stop_training = bool(self.meta["stop_training"])


def read_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    """Read and verify one checkpoint folder; DataError names what is incomplete or corrupt."""
    folder = Path(folder)
    if not (folder / MARKER).is_file():
        raise DataError(f"{folder.name} is incomplete (no {MARKER})")
    meta = read_json(folder / MARKER, what="checkpoint description")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{folder / MARKER} is not a digitlab checkpoint")
    for name, digest in (meta.get("files") or {}).items():
        if not (folder / name).is_file():
            raise DataError(f"{folder.name} lacks {name}")
        if sha256_file(folder / name) != digest:
            raise DataError(f"{folder.name}/{name} is corrupt (SHA-256 differs from {MARKER})")
    try:
        model_state = load_file(str(folder / MODEL_FILE))
        tensors = load_file(str(folder / STATE_FILE))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{folder.name}: cannot read its tensors ({exc})") from None
    return Checkpoint(folder, meta, model_state, tensors)


def latest_checkpoint(run_dir: str | os.PathLike) -> tuple[Checkpoint | None, list[str]]:
    """The newest complete checkpoint of a run (or None) and a reason for each newer one skipped."""
    skipped: list[str] = []
    for folder in sorted(checkpoint_dir(run_dir).glob("epoch-*"), reverse=True):
        try:
            return read_checkpoint(folder), skipped
        except DataError as exc:
            skipped.append(f"skipping checkpoint {folder}: {exc}")
    return None, skipped


def load_for_resume(run_dir: str | os.PathLike, warn=None) -> Checkpoint:
    """The checkpoint `digitlab train --resume RUN_DIR` continues from; skipped ones go to `warn`."""
    if not Path(run_dir).is_dir():
        raise ConfigError(f"cannot resume: {run_dir} is not a folder (give the RUN_DIR of `digitlab train -o`)")
    checkpoint, skipped = latest_checkpoint(run_dir)
    for line in skipped:
        (warn or (lambda s: print(f"warning: {s}", file=sys.stderr)))(line)
    if checkpoint is None:
        raise ConfigError(f"cannot resume: {run_dir} holds no complete checkpoint in {FOLDER}/ "
                          "(train with --checkpoint-every N to write them)")
    return checkpoint


class CheckpointCallback(Callback):
    """Writes a checkpoint every `every` epochs (and after the last one) and keeps the newest `keep`.

    resume_from: a Checkpoint whose state is restored when training begins.
    extra: JSON-able facts the resuming command needs (model name, dataset, ...), saved alongside.
    """

    def __init__(self, run_dir, every: int = 1, keep: int = 3, resume_from: Checkpoint | None = None,
                 extra: dict | None = None):
        if every < 1:
            raise ConfigError(f"checkpoint interval must be >= 1 epoch, got {every}")
        if keep < 1:
            raise ConfigError(f"must keep at least 1 checkpoint, got {keep}")
        self.run_dir, self.every, self.keep = Path(run_dir), every, keep
        self.resume_from, self.extra = resume_from, dict(extra or {})
        self.written: list[Path] = []

    def on_train_begin(self, state) -> None:
        if self.resume_from is not None:
            self.resume_from.restore(state)

    def on_epoch_end(self, state, logs) -> None:
        last = state.epoch >= state.config.epochs or state.stop_training
        if state.epoch % self.every == 0 or last:
            self.written.append(write_checkpoint(self.run_dir, state, self.extra))
            prune_checkpoints(self.run_dir, self.keep)
