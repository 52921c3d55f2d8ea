"""`digitlab models`: list the registered models, or show one's Keras-style summary."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the models, or print one model's summary")
    p.add_argument("name", nargs="?", help="a model name: print its layer-by-layer summary")
    p.set_defaults(handler=run)


def run(args) -> int:
    from digitlab.models.registry import build_model, list_models
    from digitlab.models.summary import model_summary

    if args.name:
        print(model_summary(build_model(args.name), title=args.name))
        return 0
    for entry in list_models():
        params = sum(p.numel() for p in build_model(entry.name).parameters())
        print(f"{entry.name:<8} {params:>10,} params  {entry.description}")
    return 0
