"""Keras-style progress: a live bar with running metrics on a terminal, plain lines otherwise.

Both start with a header line, so a run shows it has started at once. As Keras's Progbar: the bar
checks for a terminal, limits its redraws (reading metrics forces a host sync, so it happens at most a
few times a second), and leaves the first step out of the ETA. Without a terminal (a pipe, a log file,
Jupyter) a line goes out every `interval` seconds within an epoch as well as at its end: a `cnn` epoch
on a CPU takes over a minute.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from digitlab.train.callbacks import Callback


def format_logs(logs: dict) -> str:
    parts = []
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            parts.append(f"{key}: {logs[key]:.4f}")
    return " - ".join(parts)


def header(state) -> str:
    """'Training fast (41,450 params) on cpu: 1 epoch of 469 steps'."""
    arch = getattr(state.model, "digitlab_arch", None)
    name = arch["name"] if arch else type(state.model).__name__
    params = sum(p.numel() for p in state.model.parameters())
    epochs = state.config.epochs
    return (f"Training {name} ({params:,} params) on {state.device}: {epochs} epoch{'s' * (epochs != 1)} "
            f"of {state.steps_per_epoch} steps")


class EpochLines(Callback):
    """A header, then one line per epoch like Keras's verbose=2, and a line every `interval` seconds
    within a long epoch: for logs, pipes, CI and notebooks."""

    def __init__(self, stream=None, interval: float = 10.0):
        self.stream = stream or sys.stdout
        self.interval = interval

    def on_train_begin(self, state):
        print(header(state), file=self.stream, flush=True)

    def on_epoch_begin(self, state):
        self.started = self.last = time.perf_counter()

    def on_batch_end(self, state, step):
        now = time.perf_counter()
        if now - self.last < self.interval:
            return
        self.last = now
        print(
            f"Epoch {state.epoch + 1}/{state.config.epochs} - step {step + 1}/{state.steps_per_epoch} - "
            f"{now - self.started:.0f}s - {format_logs(state.running_metrics())}",
            file=self.stream,
            flush=True,
        )

    def on_epoch_end(self, state, logs):
        print(
            f"Epoch {state.epoch}/{state.config.epochs} - {logs['epoch_time']:.1f}s - {format_logs(logs)}",
            file=self.stream,
            flush=True,
        )


class LiveBar(Callback):
    """A rich progress bar per epoch, redrawn at most every `interval` seconds."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval

    def on_train_begin(self, state):
        self.console = Console(stderr=True)
        self.console.print(header(state), highlight=False)

    def on_epoch_begin(self, state):
        self.progress = Progress(
            TextColumn(f"Epoch {state.epoch + 1}/{state.config.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=True,
            auto_refresh=False,
        )
        self.task = self.progress.add_task("train", total=state.steps_per_epoch, metrics="")
        self.progress.start()
        self.last = 0.0

    def on_batch_end(self, state, step):
        now = time.perf_counter()
        if step == 0 or now - self.last < self.interval:
            return  # step 0 includes warm-up costs; leave it out of the ETA and the redraws
        self.last = now
        self.progress.update(self.task, completed=step + 1, metrics=format_logs(state.running_metrics()))
        self.progress.refresh()

    def on_epoch_end(self, state, logs):
        self.progress.stop()
        self.console.print(
            f"Epoch {state.epoch}/{state.config.epochs} - {logs['epoch_time']:.1f}s - {format_logs(logs)}"
        )


def default_progress() -> Callback:
    return LiveBar() if sys.stderr.isatty() else EpochLines()
