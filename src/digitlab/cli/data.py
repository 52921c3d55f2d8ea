"""`digitlab data`: describe, samples, verify, download.

Parsers are cheap; numpy, matplotlib and pooch are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys

from digitlab.cli.common import add_data_args, load_data
from digitlab.errors import ConfigError, DataError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="describe, plot, verify and download the datasets",
                                   description="Inspect and fetch MNIST and Fashion-MNIST.")
    parser.set_defaults(handler=lambda args: _usage(parser))
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p = sub.add_parser("describe", help="shapes, sizes, labels, per-class counts, pixel statistics")
    add_data_args(p)
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(handler=cmd_describe)

    p = sub.add_parser("samples", help="write a grid of sample images with their labels (PNG)")
    add_data_args(p)
    p.add_argument("-o", "--output", required=True, help="PNG file to write, e.g. samples.png")
    p.add_argument("--n", type=int, default=9, help="number of images (default 9: a 3x3 grid)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="which split (default train)")
    p.add_argument("--random", action="store_true",
                   help="a random pick instead of the split's first images (the article shows the first 9)")
    p.add_argument("--seed", type=int, default=None, help="seed of the random pick (implies --random; default 0)")
    p.set_defaults(handler=cmd_samples)

    p = sub.add_parser("verify", help="check each file's SHA-256 and decoded content against the spec")
    add_data_args(p)
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("download", help="download a dataset into the cache (or --dest)")
    p.add_argument("--dataset", default="mnist", help="dataset name (mnist, fashion-mnist); default mnist")
    p.add_argument("--dest", default=None, help="folder to download into (default: the user cache)")
    p.add_argument("--mirror", action="append", default=None, metavar="URL",
                   help="base URL to try instead of the official mirrors (repeatable, tried in order)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a silent mirror counts as failed")
    p.set_defaults(handler=cmd_download)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_describe(args) -> int:
    import json

    from digitlab.data.describe import describe, format_description

    desc = describe(load_data(args))
    print(json.dumps(desc, indent=2) if args.json else format_description(desc))
    return 0


def sample_indices(count: int, n: int, random: bool = False, seed: int | None = None):
    """(indices of the images to show, a title saying which): the first n, or a sorted random pick
    when `random` or a `seed` is given."""
    import numpy as np

    if not random and seed is None:
        return np.arange(n), f"the first {n} images"
    seed = 0 if seed is None else seed
    pick = np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
    return pick, f"{n} random images (seed {seed})"


def cmd_samples(args) -> int:
    from pathlib import Path

    import numpy as np

    from digitlab.files import save_figure
    from digitlab.viz.samples import sample_grid_figure

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise ConfigError(f"-o {output}: the sample grid is written as PNG; give a file name ending in .png")
    if args.n < 1 or args.n > 400:
        raise ConfigError(f"--n {args.n}: choose between 1 and 400 images")
    data = load_data(args)
    images, labels = data.split(args.split)
    if args.n > len(images):
        raise ConfigError(f"--n {args.n}: the {args.split} split holds only {len(images)} images")
    pick, which = sample_indices(len(images), args.n, args.random, args.seed)
    fig = sample_grid_figure(images[pick], labels[pick], n=args.n, classes=data.classes,
                             title=f"{data.name} {args.split}: {which}")
    save_figure(fig, output)
    print(f"wrote {output} ({args.n} {args.split} images of {data.name})")
    return 0


def cmd_verify(args) -> int:
    from digitlab.data.dataset import verify_folder
    from digitlab.data.locate import resolve_data_dir
    from digitlab.data.sources import get_spec

    spec = get_spec(args.dataset)
    # Verify what is there: never download here (that is `digitlab data download`).
    folder = resolve_data_dir(spec.name, args.data_dir, download=False)
    results = verify_folder(folder, spec)
    for result in results:
        print(f"{'ok  ' if result['ok'] else 'FAIL'}  {result['file']}: {result['detail']}")
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise DataError(f"{len(failed)} of {len(results)} checks failed in {folder}; delete the bad files and "
                        f"run 'digitlab data download --dataset {spec.name} --dest {folder}'")
    print(f"{spec.name}: all {len(results)} files verified in {folder}")
    return 0


def cmd_download(args) -> int:
    from digitlab.data.download import fetch
    from digitlab.data.locate import cache_dir
    from digitlab.data.sources import get_spec

    spec = get_spec(args.dataset)
    if args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout}: give a positive number of seconds")
    dest = args.dest if args.dest is not None else cache_dir(spec.name)
    folder = fetch(spec, dest, mirrors=tuple(args.mirror) if args.mirror else None, timeout=args.timeout)
    print(f"{spec.name}: 4 files verified in {folder}")
    if args.dest is not None:
        print(f"use it with --data-dir {folder}")
    return 0
