"""The `digitlab` command.

Each command group lives in its own module under digitlab.cli with two functions:
`add_parser(subparsers)` builds its argparse parser (cheap: no torch), and the handler it sets with
`set_defaults(handler=...)` does the work, importing heavy libraries inside. A DigitlabError becomes
one line on stderr and a non-zero exit; a traceback is shown only with DIGITLAB_DEBUG=1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from digitlab import __version__
from digitlab.errors import DigitlabError

# Order here is the order in `digitlab --help`.
COMMAND_MODULES = [
    "data", "models", "train", "evaluate", "calibrate", "cv", "report", "reproduce", "ensemble",
    "predict", "read", "export", "serve", "sweep",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitlab",
        description="Handwritten digit recognition: train, evaluate, cross-validate, recognise and serve.",
    )
    parser.add_argument("--version", action="version", version=f"digitlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"digitlab.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"digitlab.cli.{name}":
                continue  # a command group that is not part of this build
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    if getattr(args, "trains", False):
        # Before torch starts its thread pool, so that every pool thread inherits the setting.
        from digitlab.train.device import prepare_training_process

        prepare_training_process()
    try:
        return int(handler(args) or 0)
    except DigitlabError as exc:
        if os.environ.get("DIGITLAB_DEBUG"):
            raise
        print(f"digitlab {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"digitlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
