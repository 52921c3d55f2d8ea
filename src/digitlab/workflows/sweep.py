"""Hyper-parameter sweeps: every trial is a full cross-validation, scored by its mean fold accuracy.

Optuna chooses the settings (GridSampler for `grid`, RandomSampler for `random`, TPESampler for `tpe`)
and runs the trials; each trial calls `cross_validate` with the given executor, so with the
RayExecutor a trial's folds are Ray tasks and the data sit in the object store once for the whole
sweep. Parameters are TrainConfig's flat names (`lr`, `batch_size`, `optimizer`, ...) or model arguments
(`model.dropout`); their values are typed from the field or the model factory's default.

Outputs (`write_sweep_outputs`): sweep.csv (one row per trial, best first), best.json (the best
settings as a full TrainConfig + model arguments, ready for `digitlab train`), sweep.png (fold
accuracies and mean +- std per setting).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from digitlab.errors import ConfigError, require
from digitlab.evaluate.crossval import LocalExecutor, cross_validate
from digitlab.files import ensure_dir, save_figure, write_csv, write_json
from digitlab.models.registry import default_kwargs
from digitlab.provenance import environment
from digitlab.train.config import FLAT_NAMES, TrainConfig, flat_field

SEARCHES = ("grid", "random", "tpe")
MODEL_PREFIX = "model."
# Runtime choices, not hyper-parameters: they change where and how fast, not what is learnt. And
# augment_options, a mapping: --param takes one value per name (sweep its strengths as presets instead).
NOT_SWEEPABLE = ("device", "threads", "augment_options")


def sweepable_names(model_name: str) -> list[str]:
    config_names = [name for name in FLAT_NAMES if name not in NOT_SWEEPABLE]
    return sorted(config_names) + sorted(MODEL_PREFIX + k for k in default_kwargs(model_name))


def _parse_value(text: str, kind: str, name: str):
    text = text.strip()
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"--param {name}: {text!r} is not a valid {kind}") from None
    return text


def _kind_of_config_field(name: str) -> str:
    annotation = str(flat_field(name).type)
    for kind in ("bool", "int", "float"):  # "float | None" -> float
        if kind in annotation.split(" | "):
            return kind
    return "str"


def _kind_of_default(value) -> str:
    return {bool: "bool", int: "int", float: "float"}.get(type(value), "str")


def parse_params(specs: list[str], model_name: str) -> dict[str, list]:
    """["lr=1e-3,3e-3", "model.dropout=0.1,0.3"] -> {"lr": [0.001, 0.003], "model.dropout": [0.1, 0.3]}."""
    if not specs:
        raise ConfigError("give at least one --param NAME=V1,V2,... to sweep over")
    valid = sweepable_names(model_name)
    defaults = default_kwargs(model_name)
    params: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not values.strip():
            raise ConfigError(f"--param expects NAME=V1,V2,..., got {spec!r}")
        if name not in valid:
            raise ConfigError(f"unknown sweep parameter {name!r}: valid names are {', '.join(valid)}")
        if name in params:
            raise ConfigError(f"--param {name} is given twice: list all its values in one --param")
        if name.startswith(MODEL_PREFIX):
            kind = _kind_of_default(defaults[name[len(MODEL_PREFIX):]])
        else:
            kind = _kind_of_config_field(name)
        parsed = [_parse_value(v, kind, name) for v in values.split(",")]
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"--param {name} lists a value twice: {values}")
        params[name] = parsed
    return params


def split_params(params: dict) -> tuple[dict, dict]:
    """{"lr": .., "model.dropout": ..} -> (TrainConfig changes, model keyword arguments)."""
    config = {k: v for k, v in params.items() if not k.startswith(MODEL_PREFIX)}
    model = {k[len(MODEL_PREFIX):]: v for k, v in params.items() if k.startswith(MODEL_PREFIX)}
    return config, model


def check_grid(params: dict[str, list], base_config: TrainConfig) -> None:
    """Build every grid point's TrainConfig once, so a bad value fails before any training."""
    names = list(params)
    for combo in itertools.product(*(params[n] for n in names)):
        changes, _ = split_params(dict(zip(names, combo)))
        try:
            base_config.replace(**changes)
        except ConfigError as exc:
            raise ConfigError(f"sweep setting {dict(zip(names, combo))} is invalid: {exc}") from None


@dataclass
class SweepResult:
    model_name: str
    search: str
    params: dict  # the searched values per name
    base_config: TrainConfig
    base_model_kwargs: dict
    folds: int
    trials: list = field(default_factory=list)  # dicts: trial (1-based), params, mean, std, scores, wall_time_s
    executor: str = "local"
    wall_time_s: float = 0.0

    def ranked(self) -> list[dict]:
        """Trials best first: highest mean accuracy, then lowest std, then trial number."""
        return sorted(self.trials, key=lambda t: (-t["mean"], t["std"], t["trial"]))

    @property
    def best(self) -> dict:
        return self.ranked()[0]

    def best_settings(self) -> tuple[TrainConfig, dict]:
        changes, model = split_params(self.best["params"])
        return self.base_config.replace(**changes), {**self.base_model_kwargs, **model}


def run_sweep(model_name: str, x, y, *, params: dict[str, list], base_config: TrainConfig,
              base_model_kwargs: dict | None = None, folds: int = 3, split_seed: int = 1, search: str = "grid",
              trials: int | None = None, executor=None, sampler_seed: int = 0,
              on_trial: Callable[[dict], None] | None = None) -> SweepResult:
    """Run the search; every trial is `cross_validate(model_name, x, y, folds=folds, ...)`.

    x: uint8 (N, 28, 28); y: int64 (N,). trials: how many settings to try (grid: at most the grid size,
    default all of it; random/tpe: default 10). on_trial(dict) is called after each trial.
    """
    optuna = _optuna()

    if search not in SEARCHES:
        raise ConfigError(f"unknown search {search!r}: choose one of {', '.join(SEARCHES)}")
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    check_grid(params, base_config)
    base_model_kwargs = dict(base_model_kwargs or {})
    grid_size = 1
    for values in params.values():
        grid_size *= len(values)
    if search == "grid":
        sampler = optuna.samplers.GridSampler(params, seed=sampler_seed)
        n_trials = min(trials or grid_size, grid_size)
    else:
        sampler = (optuna.samplers.RandomSampler if search == "random" else optuna.samplers.TPESampler)(seed=sampler_seed)
        n_trials = trials or 10
    executor = executor or LocalExecutor()
    result = SweepResult(model_name, search, params, base_config, base_model_kwargs, folds,
                         executor=getattr(executor, "name", type(executor).__name__))

    def objective(trial) -> float:
        chosen = {name: trial.suggest_categorical(name, values) for name, values in params.items()}
        changes, model_changes = split_params(chosen)
        started = time.perf_counter()
        cv = cross_validate(model_name, x, y, folds=folds, config=base_config.replace(**changes),
                            model_kwargs={**base_model_kwargs, **model_changes}, seed=split_seed, executor=executor)
        row = {"trial": trial.number + 1, "params": chosen, "mean": cv.mean, "std": cv.std,
               "scores": cv.scores.tolist(), "wall_time_s": time.perf_counter() - started}
        result.trials.append(row)
        if on_trial is not None:
            on_trial(row)
        return cv.mean

    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    result.wall_time_s = time.perf_counter() - started
    return result


def _optuna():
    optuna = require("optuna", "ray")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # digitlab prints its own line per trial
    return optuna


def setting_label(params: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def sweep_figure(result: SweepResult, title: str | None = None):
    """Fold accuracies (dots) and mean +- std (bar) per setting, best at the top. Returns a Figure."""
    ranked = result.ranked()
    fig = Figure(figsize=(8, 1.2 + 0.45 * len(ranked)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row, trial in enumerate(reversed(ranked)):
        scores = [100 * s for s in trial["scores"]]
        ax.scatter(scores, [row] * len(scores), s=14, color="#9aa7b8", zorder=2, label="fold" if row == 0 else None)
        ax.errorbar(100 * trial["mean"], row, xerr=100 * trial["std"], fmt="o", color="#3b6ea8", capsize=3,
                    zorder=3, label="mean ± std" if row == 0 else None)
    ax.set_yticks(range(len(ranked)), [setting_label(t["params"]) for t in reversed(ranked)])
    ax.set_xlabel(f"accuracy (%), {result.folds}-fold cross-validation")
    ax.set_title(title or f"{result.model_name}: {result.search} search, {len(ranked)} settings")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def write_sweep_outputs(result: SweepResult, output: str | Path, extra: dict | None = None) -> Path:
    """sweep.csv (best first), best.json and sweep.png in `output`; returns the folder."""
    out = ensure_dir(output)
    names = list(result.params)
    rows = [[t["trial"], *(t["params"][n] for n in names), round(t["mean"], 6), round(t["std"], 6),
             round(min(t["scores"]), 6), round(max(t["scores"]), 6), round(t["wall_time_s"], 3)]
            for t in result.ranked()]
    write_csv(out / "sweep.csv", ["trial", *names, "mean_accuracy", "std", "min", "max", "wall_time_s"], rows)
    config, model_kwargs = result.best_settings()
    best = result.best
    write_json(out / "best.json", {
        "model": result.model_name, "params": best["params"], "mean_accuracy": best["mean"], "std": best["std"],
        "scores": best["scores"], "folds": result.folds, "search": result.search, "trials": len(result.trials),
        "config": config.to_dict(), "model_kwargs": model_kwargs, "executor": result.executor,
        "wall_time_s": round(result.wall_time_s, 3), "environment": environment(), **(extra or {}),
    })
    save_figure(sweep_figure(result), out / "sweep.png")
    return out
