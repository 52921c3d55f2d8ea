"""`digitlab sweep`: hyper-parameter search where every setting is cross-validated.

    digitlab sweep --model cnn --param lr=1e-3,3e-3,1e-2 --param batch_size=64,128 --folds 3 --executor ray

Writes OUT/sweep.csv (best first), OUT/best.json and OUT/sweep.png and prints a table ranked by mean
fold accuracy. Settings not swept come from the usual training flags (and --preset).
"""

from __future__ import annotations

from digitlab.cli.common import add_data_args, add_device_args, load_data
from digitlab.cli.cv import add_executor_args, make_executor
from digitlab.cli.train import add_model_args, add_train_config_args, resolve_config


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="hyper-parameter search (grid, random or TPE via Optuna), each setting cross-validated",
        description="Search training settings; every trial is a k-fold cross-validation (its folds run on the "
                    "chosen executor). Example: digitlab sweep --model cnn --param lr=1e-3,3e-3,1e-2 "
                    "--param batch_size=64,128 --folds 3 --executor ray",
    )
    add_model_args(p)  # --param values override the preset's and the flags'
    p.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a setting and its values, e.g. lr=1e-3,3e-3 or model.dropout=0.1,0.3 (repeatable)")
    p.add_argument("--search", choices=("grid", "random", "tpe"), default="grid",
                   help="grid: every combination; random / tpe: --trials samples (default grid)")
    p.add_argument("--trials", type=int, default=None, help="settings to try (grid: default all; random/tpe: 10)")
    p.add_argument("--folds", type=int, default=3, help="folds per trial (default 3)")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="use the first N training images only")
    p.add_argument("-o", "--output", default=None, help="folder to write (default runs/sweep-<model>)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--json", action="store_true", help="end with one JSON line: best settings and score")
    add_train_config_args(p)
    add_executor_args(p)
    add_data_args(p)
    add_device_args(p)
    p.set_defaults(handler=run, seed=1, trains=True)  # also the KFold split seed and the sampler seed


def format_trial(row: dict, total: int) -> str:
    from digitlab.workflows.sweep import setting_label

    return (f"trial {row['trial']}/{total}: {setting_label(row['params'])} -> "
            f"{100 * row['mean']:.3f}% ± {100 * row['std']:.3f} ({row['wall_time_s']:.1f}s)")


def print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.model_name}: {result.search} search, {result.folds}-fold CV, best first")
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    for name in result.params:
        table.add_column(name)
    for column in ("mean %", "std", "min %", "max %", "time s"):
        table.add_column(column, justify="right")
    for rank, t in enumerate(result.ranked(), 1):
        table.add_row(str(rank), str(t["trial"]), *(str(t["params"][n]) for n in result.params),
                      f"{100 * t['mean']:.3f}", f"{100 * t['std']:.3f}", f"{100 * min(t['scores']):.3f}",
                      f"{100 * max(t['scores']):.3f}", f"{t['wall_time_s']:.1f}")
    Console(width=max(100, 20 * (len(result.params) + 6))).print(table)


def run(args) -> int:
    import json

    from digitlab.errors import ConfigError
    from digitlab.files import file_states, prepare_output_dir, remove_stale
    from digitlab.workflows.sweep import parse_params, run_sweep, write_sweep_outputs

    model, model_kwargs, config = resolve_config(args)
    params = parse_params(args.param, model)
    output = args.output or f"runs/sweep-{args.preset or model}"
    before = file_states(output)
    prepare_output_dir(output, overwrite=args.overwrite)  # before any trial runs
    executor = make_executor(args)
    data = load_data(args)
    x, y = data.x_train, data.y_train
    if args.subset is not None:
        if not args.folds <= args.subset <= len(x):
            raise ConfigError(f"--subset {args.subset}: choose between {args.folds} and {len(x)} images")
        x, y = x[: args.subset], y[: args.subset]
    if args.search == "grid":
        size = 1
        for values in params.values():
            size *= len(values)
        total = min(args.trials or size, size)
    else:
        total = args.trials or 10
    result = run_sweep(model, x, y, params=params, base_config=config, base_model_kwargs=model_kwargs,
                       folds=args.folds, split_seed=args.seed, search=args.search, trials=args.trials,
                       executor=executor, sampler_seed=args.seed,
                       on_trial=lambda row: print(format_trial(row, total), flush=True))
    out = write_sweep_outputs(result, output, extra={"dataset": data.name, "subset": args.subset})
    if args.overwrite:
        remove_stale(out, before)
    print_table(result)
    best = result.best
    print(f"Best: {' '.join(f'{k}={v}' for k, v in best['params'].items())} -> mean {100 * best['mean']:.3f}% "
          f"std {100 * best['std']:.3f} ({len(result.trials)} trials, {result.wall_time_s:.1f}s)")
    print(f"Saved to {out} (sweep.csv, best.json, sweep.png)")
    if args.json:
        print(json.dumps({"model": model, "best_params": best["params"], "best_mean": round(best["mean"], 6),
                          "best_std": round(best["std"], 6), "trials": len(result.trials), "search": args.search,
                          "executor": result.executor, "wall_time_s": round(result.wall_time_s, 3),
                          "output": str(out)}))
    return 0
