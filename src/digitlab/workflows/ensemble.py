"""Ensemble training: N seeds of one preset, each an ordinary run folder that
digitlab.evaluate.ensemble can score and average."""

from __future__ import annotations

from pathlib import Path

from digitlab.errors import ConfigError
from digitlab.workflows.train_run import train_run


def train_members(preset: str | None, model_name: str, model_kwargs: dict, config, data, output: str | Path,
                  seeds: int, verbose: bool = True) -> list[Path]:
    """Train `seeds` runs (seeds config.seed, config.seed + 1, ...) into OUTPUT/seed-<k>; return the folders."""
    if seeds < 2:
        raise ConfigError(f"an ensemble needs at least 2 seeds, got {seeds}")
    folders = []
    for k in range(config.seed, config.seed + seeds):
        if verbose:
            print(f"Training member seed {k} ({len(folders) + 1}/{seeds}) into {Path(output) / f'seed-{k}'}")
        result = train_run(model_name, config.replace(seed=k), data, Path(output) / f"seed-{k}",
                           model_kwargs=model_kwargs, verbose=verbose, preset=preset)
        if verbose:
            print(f"  seed {k}: test accuracy {result.metrics['test_accuracy']:.4f} "
                  f"({result.metrics['train_time_s']:.1f}s)")
        folders.append(result.output)
    return folders
