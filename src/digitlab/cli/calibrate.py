"""`digitlab calibrate`: fit the temperature that makes a model's confidences match its accuracy.

The work is digitlab.workflows.calibrate (`dl.calibrate` in Python); this module maps the flags onto it.
"""

from __future__ import annotations

from digitlab.cli.common import add_data_args

SOURCES = ("auto", "val", "augmented-train")  # digitlab.workflows.calibrate.SOURCES, without importing torch


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="fit a model's temperature so that its confidences match its accuracy",
        description="Fit the temperature T (probabilities = softmax(logits / T)) that minimises the negative "
                    "log-likelihood on held-out images, and store it in the model's JSON. "
                    "Example: digitlab calibrate runs/best",
    )
    p.add_argument("run", help="run folder, .safetensors or model .json; 'pretrained' for the shipped model (with -o)")
    p.add_argument("--on", dest="source", choices=SOURCES, default="auto",
                   help="images to fit on: the run's validation split, or training images with the run's "
                        "augmentation (affine if it had none); auto = val if the run held one out, else "
                        "augmented-train if it trained with augmentation")
    p.add_argument("--images", type=int, default=10_000, help="augmented training images to fit on (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="which training images, and their augmentation (default 0)")
    p.add_argument("-o", "--output", default=None,
                   help="write a calibrated copy (weights + JSON) into this folder instead of updating the model")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    # Imported here, not at the top: `digitlab --help` must not import torch.
    import json

    from digitlab.workflows.calibrate import calibrate

    record = calibrate(args.run, args.dataset, on=args.source, images=args.images, seed=args.seed, output=args.output,
                       data_dir=args.data_dir, download=not args.no_download)
    if args.json:
        print(json.dumps(record))
        return 0
    temperature = record["temperature"]
    print(f"Model: {record['architecture']} -> {record['model']}")
    print(f"Fitted on {record['fitted_on']}: temperature {temperature:.3f}")
    for name, part in (("fitting images", record["fit"]), ("test set (reported only)", record["test"])):
        before, after = part["before"], part["after"]
        print(f"  {name}: accuracy {before['accuracy']:.4f}; mean confidence {before['mean_confidence']:.4f} -> "
              f"{after['mean_confidence']:.4f}; NLL {before['nll']:.4f} -> {after['nll']:.4f}; "
              f"ECE {before['ece']:.4f} -> {after['ece']:.4f}")
    return 0
