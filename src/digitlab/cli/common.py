"""Arguments that several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

import argparse


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist", help="dataset name (mnist, fashion-mnist); default mnist")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the dataset's four IDX files (or mnist.npz); "
        "overrides $DIGITLAB_DATA_DIR/<dataset> and the cache",
    )
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")


def add_device_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")


def load_data(args):
    from digitlab.data.dataset import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
