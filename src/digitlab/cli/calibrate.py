"""`digitlab calibrate`: fit the temperature that makes a model's confidences match its accuracy.

The temperature is fitted on images the model did not train on: the run's validation split
(`--val-split`), or training images with the model's training augmentation (each one a new image).
The test set is only reported, before and after, never fitted on. The result goes into the model's
JSON ("temperature_scaling"); predictions keep their order, only the probabilities change.
"""

from __future__ import annotations

from digitlab.cli.common import add_data_args

SOURCES = ("auto", "val", "augmented-train")


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
    import json
    import shutil
    import time

    from scipy.special import softmax

    from digitlab import __version__
    from digitlab.cli.common import load_data
    from digitlab.errors import ConfigError
    from digitlab.evaluate.temperature import apply_temperature, calibration_stats, fit_temperature
    from digitlab.files import ensure_dir, read_json, write_json
    from digitlab.models.storage import load_model, pretrained_path, resolve_model_files

    if args.images < 100:
        raise ConfigError(f"--images must be at least 100, got {args.images}")
    shipped = args.run == "pretrained"
    if shipped and not args.output:
        raise ConfigError("the shipped model lives inside the installed package: give -o FOLDER for a calibrated copy")
    meta_path, weights_path = resolve_model_files(pretrained_path() if shipped else args.run)
    model = load_model(meta_path)
    meta = read_json(meta_path, what="model description")
    trained_on = (meta.get("metrics") or {}).get("dataset")
    if trained_on and trained_on != args.dataset:
        raise ConfigError(f"this model was trained on {trained_on}, so it is calibrated on {trained_on} images: "
                          f"add --dataset {trained_on}")
    data = load_data(args)
    x_fit, y_fit, described = _fitting_set(args, meta.get("train_config") or {}, data)

    fit_logits = _logits(model, x_fit)
    temperature = fit_temperature(fit_logits, y_fit)
    test_logits = _logits(model, data.x_test)
    fit_probs, test_probs = softmax(fit_logits, axis=1), softmax(test_logits, axis=1)
    record = {
        "temperature": round(temperature, 4),
        "fitted_on": described,
        "fit": {"before": calibration_stats(fit_probs, y_fit),
                "after": calibration_stats(apply_temperature(fit_probs, temperature), y_fit)},
        "test": {"before": calibration_stats(test_probs, data.y_test),
                 "after": calibration_stats(apply_temperature(test_probs, temperature), data.y_test)},
        "digitlab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    meta["temperature_scaling"] = record
    if args.output:
        out = ensure_dir(args.output)
        if out.resolve() != weights_path.parent.resolve():
            shutil.copyfile(weights_path, out / weights_path.name)
        target = out / meta_path.name
    else:
        target = meta_path
    write_json(target, meta)

    if args.json:
        print(json.dumps({"model": str(target), **record}))
        return 0
    print(f"Model: {meta['architecture']['name']} -> {target}")
    print(f"Fitted on {described}: temperature {temperature:.3f}")
    for name, part in (("fitting images", record["fit"]), ("test set (reported only)", record["test"])):
        before, after = part["before"], part["after"]
        print(f"  {name}: accuracy {before['accuracy']:.4f}; mean confidence {before['mean_confidence']:.4f} -> "
              f"{after['mean_confidence']:.4f}; NLL {before['nll']:.4f} -> {after['nll']:.4f}; "
              f"ECE {before['ece']:.4f} -> {after['ece']:.4f}")
    return 0


def _fitting_set(args, train_config: dict, data):
    """(images (N, 1, 28, 28) float32, labels, description) that the model did not train on."""
    import torch

    from digitlab.errors import ConfigError
    from digitlab.train.loop import _split_validation, to_input_tensor

    val_split = int(train_config.get("val_split") or 0)
    augment = train_config.get("augment") or "none"
    source = args.source
    if source == "auto":
        if val_split:
            source = "val"
        elif augment != "none":
            source = "augmented-train"
        else:
            raise ConfigError("this model trained on every training image without augmentation, so no image is "
                              "held out to calibrate on: retrain it with --val-split 5000, or use "
                              "--on augmented-train (affine-augmented training images)")
    if source == "val":
        if not val_split:
            raise ConfigError("this model held out no validation split (it trained without --val-split): "
                              "use --on augmented-train")
        seed = int(train_config.get("seed") or 0)
        *_, x_val, y_val = _split_validation(to_input_tensor(data.x_train), torch.tensor(data.y_train),
                                             val_split, seed)
        return x_val, y_val.numpy(), f"its validation split ({val_split} training images held out, seed {seed})"
    from digitlab.train.augment import make_augment

    kind = augment if augment != "none" else "affine"
    if augment == "none":
        import sys

        print("warning: this model trained without augmentation, so affine-augmented images are harder for it "
              "than its test set: the temperature will likely come out too high (less confident than it should be)",
              file=sys.stderr)
    n = min(args.images, len(data.x_train))
    generator = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(data.x_train), generator=generator)[:n].sort().values.numpy()
    x = to_input_tensor(data.x_train[pick])
    warp = make_augment(kind)
    with torch.no_grad():
        x = torch.cat([warp(x[i : i + 1024], generator) for i in range(0, n, 1024)])
    return x, data.y_train[pick], f"{n} training images with {kind} augmentation (seed {args.seed})"


def _logits(model, x, batch_size: int = 2048):
    import numpy as np
    import torch

    from digitlab.train.loop import to_input_tensor

    x = x if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else to_input_tensor(x)
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(x[i : i + batch_size]).float().numpy() for i in range(0, len(x), batch_size)])
