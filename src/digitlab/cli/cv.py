"""`digitlab cv`: k-fold cross-validation with a fresh model per fold (or the article's leaky protocol).

    digitlab cv --model mlp --folds 5 --epochs 5 --batch-size 128 --seed 1 -o runs/cv-mlp
    > 97.717
    ...
    Accuracy: mean=97.552 std=0.253, n=5

Executors are pluggable: `add_executor_args` declares the flags and `make_executor(args)` builds the
executor; a new backend adds its name to EXECUTORS, its flags, and one branch in make_executor.
"""

from __future__ import annotations

import argparse

from digitlab.cli.common import add_data_args, add_device_args, load_data
from digitlab.cli.train import add_model_args, add_train_config_args, resolve_config

EXECUTORS = ("auto", "local", "processes", "ray")
LEAK_WARNING = ("--reuse-model: ONE network is trained across the folds (the article's protocol), so from "
                "fold 2 on it has already trained on each test fold: these scores are LEAKY, not estimates")


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("execution")
    g.add_argument("--executor", choices=EXECUTORS, default="auto",
                   help="where the folds run: local (one after another in this process), processes (folds side "
                        "by side in worker processes on this machine), ray (one Ray task per fold; needs the "
                        "'ray' extra), or auto (default: processes on a multi-core CPU, else local)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes: folds run at once (default: one per physical core)")
    g.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="ray: the head of an existing Ray cluster (or 'auto'); default: start Ray on this machine")
    g.add_argument("--cpus-per-fold", type=int, default=1, metavar="N",
                   help="ray: CPUs each fold reserves, and its torch threads (default 1)")
    g.add_argument("--gpus-per-fold", type=float, default=0, metavar="F",
                   help="ray: GPUs each fold reserves, fractions allowed (default 0)")


def make_executor(args):
    """The fold executor named by --executor ("auto" picks processes or local, see choose_auto)."""
    from digitlab.errors import ConfigError
    from digitlab.evaluate.crossval import LocalExecutor

    if args.executor == "ray":
        from digitlab.evaluate.ray_executor import RayExecutor

        if args.workers is not None:
            raise ConfigError("--workers applies to --executor processes; Ray sizes folds with --cpus-per-fold")
        return RayExecutor(address=args.address, cpus_per_fold=args.cpus_per_fold, gpus_per_fold=args.gpus_per_fold)
    if args.address is not None or args.cpus_per_fold != 1 or args.gpus_per_fold:
        raise ConfigError("--address, --cpus-per-fold and --gpus-per-fold apply to --executor ray")
    name = choose_auto(args) if args.executor == "auto" else args.executor
    if name == "processes":
        from digitlab.evaluate.process_executor import ProcessExecutor

        return ProcessExecutor(workers=args.workers)
    if args.workers is not None and args.executor == "local":
        raise ConfigError("--workers applies to --executor processes (local runs one fold at a time)")
    return LocalExecutor()


def choose_auto(args) -> str:
    """processes when the folds train on a CPU with more than one core; local otherwise.

    Local for a GPU (one device, folds one after another), for one core, and for --reuse-model
    (one network across the folds cannot be split).
    """
    from digitlab.evaluate.process_executor import auto_executor

    if getattr(args, "reuse_model", False):
        return "local"
    if args.workers is not None:
        return "processes"
    return auto_executor(args.device).name


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "cv", help="k-fold cross-validation: a fresh model per fold, scores, plots and diagnostics",
        description="k-fold cross-validation on the training images, split as scikit-learn's "
                    "KFold(k, shuffle=True, random_state=seed). Example (the article): "
                    "digitlab cv --model mlp --folds 5 --epochs 5 --batch-size 128 --seed 1 -o runs/cv-mlp",
    )
    add_model_args(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--stratified", action="store_true", help="StratifiedKFold: every fold keeps the class balance")
    p.add_argument("--reuse-model", action="store_true",
                   help="the article's LEAKY protocol: one network trained on across the folds")
    p.add_argument("--resume", action="store_true", help="skip folds already saved in the output folder")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="cross-validate on the first N training images only (quick checks)")
    p.add_argument("-o", "--output", default=None,
                   help="folder to write (default runs/cv-<model>, runs/cv-leaky-<model> with --reuse-model)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--json", action="store_true", help="end with one JSON line: fold scores, mean, std, timings")
    add_train_config_args(p)
    add_executor_args(p)
    add_data_args(p)
    add_device_args(p)
    p.set_defaults(handler=run, seed=1, trains=True)  # seed 1: the article's KFold random_state


def format_fold(result, leaky: bool) -> str:
    """The article's per-fold line: `> 97.717` (accuracy x 100, three decimals)."""
    line = f"> {100 * result.accuracy:.3f}"
    if leaky and result.fold > 0:
        line += "  (leaky: this fold's test images were trained on in earlier folds)"
    return line


def format_summary(result) -> str:
    """The article's last line: `Accuracy: mean=97.552 std=0.253, n=5` (numpy std, ddof=0)."""
    line = f"Accuracy: mean={100 * result.mean:.3f} std={100 * result.std:.3f}, n={len(result.folds)}"
    return line + ("  [LEAKY: --reuse-model]" if result.reuse_model else "")


def run(args) -> int:
    import json

    from digitlab.errors import ConfigError
    from digitlab.evaluate.crossval import cross_validate
    from digitlab.evaluate.diagnostics import format_per_class_table
    from digitlab.files import file_states, prepare_output_dir, remove_stale
    from digitlab.workflows.artifacts import write_cv_outputs

    model, model_kwargs, config = resolve_config(args)
    # The leaky protocol gets its own default folder: it must never replace a fresh CV's results.
    output = args.output or f"runs/cv-{'leaky-' if args.reuse_model else ''}{args.preset or model}"
    if args.resume and args.overwrite:
        raise ConfigError("--overwrite starts the folds afresh and --resume keeps them: choose one")
    before = file_states(output)
    prepare_output_dir(output, overwrite=args.overwrite, resume=args.resume,
                       flag_hint="--overwrite (or --resume to finish its folds)")
    # The executor first: a missing `ray` extra should fail before the data loads.
    if args.reuse_model and args.executor not in ("auto", "local"):
        raise ConfigError("--reuse-model trains one network across the folds, so it cannot run on "
                          f"--executor {args.executor}: use --executor local")
    executor = None if args.reuse_model else make_executor(args)
    data = load_data(args)
    x, y = data.x_train, data.y_train
    if args.subset is not None:
        if not 2 <= args.subset <= len(x):
            raise ConfigError(f"--subset {args.subset}: choose between 2 and {len(x)} images")
        x, y = x[: args.subset], y[: args.subset]
    if args.reuse_model:
        print(f"WARNING {LEAK_WARNING}", flush=True)
    result = cross_validate(
        model, x, y, folds=args.folds, config=config, model_kwargs=model_kwargs, seed=args.seed,
        stratified=args.stratified, reuse_model=args.reuse_model, executor=executor,
        on_result=lambda r: print(format_fold(r, args.reuse_model), flush=True),
        output=output, resume=args.resume,
    )
    print(format_summary(result))
    diag = write_cv_outputs(result, x, y, classes=data.classes, dataset=data.name,
                            extra={"subset": args.subset})
    if args.overwrite:
        remove_stale(output, before)
    print(f"Overfitting: {diag['overfitting']['text']}")
    print(f"Per-class scores ({diag['source']}{', LEAKY' if result.reuse_model else ''}):")
    print(format_per_class_table(diag["per_class"]))
    print(f"CV time: {result.wall_time_s:.1f}s ({len(result.resumed)} folds resumed) - saved to {result.output}")
    if args.json:
        print(json.dumps(result.summary()))
    return 0
