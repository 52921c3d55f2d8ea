"""History: per-epoch metrics as a dict of lists, as Keras's `History.history`."""

from __future__ import annotations

import csv
from pathlib import Path

from digitlab.files import write_csv


class History(dict):
    """{'loss': [...], 'accuracy': [...], 'val_loss': [...], 'val_accuracy': [...], 'lr': [...], ...}"""

    def append(self, logs: dict) -> None:
        for key, value in logs.items():
            self.setdefault(key, []).append(float(value))

    @property
    def epochs(self) -> int:
        return len(self.get("loss", []))

    def last(self, key: str, default=None):
        values = self.get(key)
        return values[-1] if values else default

    def to_csv(self, path: str | Path) -> Path:
        keys = list(self)
        rows = [[i + 1, *(self[k][i] if i < len(self[k]) else "" for k in keys)] for i in range(self.epochs)]
        return write_csv(path, ["epoch", *keys], rows)

    @classmethod
    def from_csv(cls, path: str | Path) -> "History":
        history = cls()
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                history.append({k: float(v) for k, v in row.items() if k != "epoch" and v != ""})
        return history
