"""`digitlab reproduce -o runs/article`: the article end to end, then its report."""

from __future__ import annotations

import argparse

from digitlab.cli.common import add_data_args, add_device_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="run the article end to end (data, mlp training, test, 5-fold CV) and write the report",
        description="Reproduce the Keras MNIST article: describe the data, plot samples, train the mlp "
                    "(rmsprop, 5 epochs, batch 128, test set as validation), test it, cross-validate it with a "
                    "fresh model per fold and with the article's reused (leaky) model, side by side, then "
                    "write report.html. Example: digitlab reproduce -o runs/article",
    )
    p.add_argument("-o", "--output", default="runs/article", help="folder to write (default runs/article)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--with-leaky", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the article's leaky CV (one model reused across folds), shown beside the "
                        "honest one (default; --no-with-leaky leaves it out and saves its time)")
    p.add_argument("--folds", type=int, default=5, help="CV folds (default 5, as the article)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (default 5, as the article)")
    p.add_argument("--seed", type=int, default=1, help="split and training seed (default 1, the article's random_state)")
    add_data_args(p)
    add_device_args(p)
    p.set_defaults(handler=run, trains=True)


def run(args) -> int:

    from digitlab.cli.common import load_data
    from digitlab.cli.cv import format_fold
    from digitlab.errors import ConfigError
    from digitlab.files import file_states, prepare_output_dir, remove_stale
    from digitlab.workflows.reproduce import reproduce_article

    if args.folds < 2:
        raise ConfigError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    if args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: train for at least 1 epoch")
    before = file_states(args.output)
    prepare_output_dir(args.output, overwrite=args.overwrite)
    data = load_data(args)
    reproduce_article(
        data, args.output, with_leaky=args.with_leaky, folds=args.folds, epochs=args.epochs, seed=args.seed,
        device=args.device, threads=args.threads, log=lambda line: print(line, flush=True),
        on_fold=lambda result, leaky: print(format_fold(result, leaky), flush=True),
    )
    if args.overwrite:
        remove_stale(args.output, before)
    return 0
