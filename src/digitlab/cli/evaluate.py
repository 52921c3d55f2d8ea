"""`digitlab evaluate`: test loss, accuracy and per-class accuracy of a saved model."""

from __future__ import annotations

from digitlab.cli.common import add_data_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="test loss and accuracy of a saved model (or the shipped one)")
    p.add_argument("run", nargs="?", help="run folder, .safetensors or model .json")
    p.add_argument("--pretrained", action="store_true", help="evaluate the model that ships with digitlab")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--tta", default="none", metavar="POLICY",
                   help="test-time augmentation: none (default), shift4, shift8, rotate, shift4-rotate")
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from digitlab.cli.common import load_data
    from digitlab.errors import ConfigError
    from digitlab.evaluate.metrics import evaluate
    from digitlab.evaluate.tta import check_policy
    from digitlab.models.storage import load_model

    check_policy(args.tta)
    if bool(args.run) == bool(args.pretrained):
        raise ConfigError("give a run folder to evaluate, or --pretrained (not both)")
    model = load_model(None if args.pretrained else args.run)
    data = load_data(args)
    scores = evaluate(model, data.x_test, data.y_test, classes=data.classes, tta=args.tta)
    meta = model.digitlab_meta
    if args.json:
        out = {k: scores[k] for k in ("loss", "accuracy", "n", "errors", "per_class_accuracy")}
        out["model"] = meta["architecture"]["name"]
        out["recorded_test_accuracy"] = meta.get("metrics", {}).get("test_accuracy")
        out["tta"] = args.tta
        print(json.dumps(out))
        return 0
    print(f"Model: {meta['architecture']['name']} ({meta.get('num_params', 0):,} params)")
    if args.tta != "none":
        print(f"Test-time augmentation: {args.tta}")
    print(f"Test loss: {scores['loss']:.4f} - test accuracy: {scores['accuracy']:.4f} "
          f"({scores['errors']} errors in {scores['n']:,})")
    print("Per-class accuracy:")
    for name, acc in scores["per_class_accuracy"].items():
        print(f"  {name:>12}: {acc:.4f}")
    return 0
