"""`digitlab evaluate`: a saved model's test loss, accuracy and per-class accuracy, or, with
`--images DIR`, its accuracy on your own labelled images (DIR/<label>/*.png, see
digitlab.inference.folder): per class, per source, the confusions and the files it got wrong."""

from __future__ import annotations

from digitlab.cli.common import add_data_args


def add_parser(subparsers) -> None:
    from digitlab.cli.predict import add_model_args

    p = subparsers.add_parser(
        "evaluate", help="test accuracy of a saved model (or the shipped one), or its accuracy on your labelled images",
        description="Score a model on the test set, or with --images DIR on your own labelled images laid out as "
                    "DIR/<label>/*.png (labels 0-9; a folder named by a longer number, e.g. 2026/, is read as "
                    "a number).")
    p.add_argument("run", nargs="?", help="run folder, .safetensors or model .json (same as --model)")
    p.add_argument("--pretrained", action="store_true", help="evaluate the model that ships with digitlab")
    p.add_argument("--images", metavar="DIR", help="score your own labelled images: DIR/<label>/*.png|jpg|...")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--tta", default="none", metavar="POLICY",
                   help="test-time augmentation (test set only): none (default), shift4, shift8, rotate, shift4-rotate")
    add_model_args(p)
    add_data_args(p)
    p.set_defaults(handler=run)


def _model_source(args) -> str | None:
    """The one model the flags name (None: the shipped model)."""
    from digitlab.errors import ConfigError

    named = [name for name, given in (("RUN", args.run), ("--model", args.model), ("--pretrained", args.pretrained))
             if given]
    if len(named) > 1:
        raise ConfigError(f"name one model: {' and '.join(named)} were both given")
    if not named and not args.images:
        raise ConfigError("give a run folder to evaluate, or --pretrained for the shipped model")
    return args.run or args.model


def run(args) -> int:
    from digitlab.errors import ConfigError

    source = _model_source(args)
    if args.images:
        if args.tta != "none":
            raise ConfigError("--tta applies to the test set; --images scores your images as `predict` reads them")
        return _run_images(args, source)
    if args.runtime != "torch":
        raise ConfigError("--runtime onnx applies to --images; the test set is scored with torch")
    return _run_test_set(args, source)


def _run_test_set(args, source) -> int:
    import json

    from digitlab.cli.common import load_data
    from digitlab.evaluate.metrics import evaluate
    from digitlab.evaluate.tta import check_policy
    from digitlab.models.storage import load_model

    check_policy(args.tta)
    model = load_model(source)
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


def _run_images(args, source) -> int:
    import json

    from digitlab.inference.folder import list_image_folder, score_folder
    from digitlab.inference.recognizer import Recognizer

    listing = list_image_folder(args.images)  # a bad folder fails before the model loads
    rec = Recognizer.load(source, runtime=args.runtime, min_confidence=args.min_confidence,
                          max_pixels=args.max_pixels)
    score = score_folder(rec, listing)
    if args.json:
        print(json.dumps(score))
        return 0
    for line in score_lines(score, rec.info):
        print(line)
    return 0


def _row(name: str, tally: dict, width: int) -> str:
    return f"  {name:>{width}}: {tally['accuracy']:.4f}  ({tally['right']}/{tally['n']})"


def score_lines(score: dict, info: dict, max_wrong: int = 50) -> list[str]:
    """The text report of score_folder's result."""
    lines = [f"Model: {info.get('name')} ({info.get('architecture')}, runtime {info.get('runtime')})",
             f"Images: {score['n']} in {len(score['per_class'])} labels, {len(score['per_source'])} sources, "
             f"from {score['folder']}"]
    failed = f"; {score['unreadable']} unreadable, {score['no_digit']} with no digit found (counted wrong)"
    lines.append(f"Accuracy: {score['accuracy']:.4f}  ({score['right']} of {score['n']} right{failed})")
    width = max(len(k) for k in [*score["per_class"], *score["per_source"]])
    lines.append("Per label:")
    lines += [_row(name, t, width) for name, t in score["per_class"].items()]
    lines.append("Per source (file-name prefix before '_'):")
    lines += [_row(name, t, width) for name, t in score["per_source"].items()]
    if score["confusions"]:
        lines.append("Confusions (true -> answered: count):")
        lines += [f"  {c['true']} -> {c['predicted'] or 'no answer'}: {c['count']}" for c in score["confusions"]]
        lines.append("Wrong files:")
        for w in score["wrong"][:max_wrong]:
            answer = (f"answered {w['predicted']} ({w['confidence']:.3f})" if w["predicted"] is not None
                      else f"no answer: {w['reason']}")
            lines.append(f"  {w['file']}: true {w['true']}, {answer}")
        if len(score["wrong"]) > max_wrong:
            lines.append(f"  ... and {len(score['wrong']) - max_wrong} more (all of them with --json)")
    if score["skipped"]:
        lines.append(f"Left out: {len(score['skipped'])} entries beside the label folders "
                     f"(e.g. {score['skipped'][0]['path']}: {score['skipped'][0]['reason']})")
    return lines
