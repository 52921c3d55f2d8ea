"""`digitlab train [--from RUN|--pretrained] --images DIR`: fine-tune a trained model (the shipped one
by default) on your own labelled digits (see digitlab.inference.finetune) and save a normal run folder."""

from __future__ import annotations

import argparse

# The fine-tuning fit, where the flags leave a setting unset: a short, gentle schedule (the weights
# are already good), augmentation so that your repeated images are not learnt by heart, and the end
# weights blended halfway back to the start (digitlab.train.blend), which keeps what the model knew:
# on 80 font-rendered digits, MNIST test 0.9970 -> 0.9954 without the blend, 0.9961 with it, the
# held-out digits 0.95 -> 1.00 either way.
FINETUNE_CONFIG = {"epochs": 3, "optimizer": "sgd", "lr": 0.003, "momentum": 0.9, "label_smoothing": 0.1,
                   "augment": "affine", "batch_size": 128, "blend_start": 0.5}
# Flags that describe a training from scratch (or its resumption), not a fine-tuning.
NOT_WITH_IMAGES = ("model", "preset", "resume", "checkpoint_every", "validate_on_test", "teacher")


def add_images_args(parser: argparse.ArgumentParser) -> None:
    from digitlab.inference.finetune_settings import FinetuneSettings

    d = FinetuneSettings()
    g = parser.add_argument_group("fine-tune on your own digits")
    g.add_argument("--images", metavar="DIR", help="your labelled digits, DIR/<label>/*.png (labels 0-9): "
                   "fine-tunes the model given with --from RUN (default: the shipped model); "
                   f"{d.holdout * 100:.0f}%% of each label is held out to measure the gain")
    g.add_argument("--holdout", type=float, default=d.holdout, metavar="F",
                   help=f"share of each label's images held out (default {d.holdout})")
    g.add_argument("--mix-mnist", type=int, default=d.mnist_images, metavar="N",
                   help=f"MNIST training images mixed in, so that nothing is forgotten (default {d.mnist_images})")
    g.add_argument("--user-share", type=float, default=d.user_share, metavar="F",
                   help=f"your images' share of the mixed set, by repetition (default {d.user_share})")


def _finetune_config(args, flags, parse_pairs):
    from digitlab.errors import ConfigError
    from digitlab.train.config import TrainConfig

    given = [f"--{n.replace('_', '-')}" for n in NOT_WITH_IMAGES if getattr(args, n, None)]
    given += ["--model-arg"] if getattr(args, "model_arg", None) else []
    if given:
        raise ConfigError("--images fine-tunes a trained model (--from RUN, or the shipped one): "
                          f"drop {', '.join(given)}")
    values = dict(FINETUNE_CONFIG)
    for name in flags:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "augment_arg", None):
        values["augment_options"] = parse_pairs(args.augment_arg, "--augment-arg")
    values["device"], values["threads"] = args.device, args.threads
    return TrainConfig.from_flat(**values)


def finetune_source(args) -> str | None:
    """The model to fine-tune: `--from RUN` where given (argparse's dest "from"), else the shipped model
    (also what `--pretrained` asks for)."""
    source = getattr(args, "from", None)
    if source in ("pretrained", "--pretrained") or getattr(args, "pretrained", False):
        return None
    return source


def run_images(args, source: str | None, flags, parse_pairs) -> int:
    """Fine-tune the model at `source` (None: the shipped one) on args.images; save the run.

    flags: the names of `train`'s settings flags (an explicit one overrides FINETUNE_CONFIG);
    parse_pairs: its KEY=VALUE parser, for --augment-arg."""
    import json
    from pathlib import Path

    from digitlab.cli.common import load_data
    from digitlab.errors import ConfigError
    from digitlab.inference.finetune import FinetuneSettings, finetune, read_user_digits, report_lines
    from digitlab.inference.recognizer import Recognizer
    from digitlab.models.storage import load_model
    from digitlab.provenance import environment
    from digitlab.train.device import resolve_device
    from digitlab.workflows.train_run import save_run

    config = _finetune_config(args, flags, parse_pairs)
    settings = FinetuneSettings(holdout=args.holdout, mnist_images=args.mix_mnist, user_share=args.user_share,
                                seed=config.seed)
    model = load_model(source)
    name = (model.digitlab_meta.get("architecture") or {}).get("name", "model")
    output = Path(args.output or f"runs/{name}-finetuned")
    if (output / "model.json").exists():
        raise ConfigError(f"{output} already holds a model: choose another -o/--output folder")
    user = read_user_digits(Recognizer.load(source), args.images)
    data = load_data(args)
    classes = list(model.digitlab_meta.get("classes") or [])
    if classes and classes != list(data.classes):
        raise ConfigError(f"the model's classes ({', '.join(classes)}) are not {data.name}'s: "
                          "mix in the dataset the model was trained on (--dataset)")
    result = finetune(model, user, data, config, settings)
    report = {**result.report, "from": str(source) if source else "pretrained", "images_folder": str(args.images)}
    history = result.history
    metrics = {
        "dataset": data.name, "model": name, "preset": None, "seed": config.seed,
        "test_loss": result.test["loss"], "test_accuracy": result.test["accuracy"],
        "train_loss": history.last("loss"), "train_accuracy": history.last("accuracy"),
        "epochs_run": history.epochs, "train_time_s": round(sum(history.get("epoch_time", [])), 3),
        "per_class_accuracy": result.test["per_class_accuracy"],
        "environment": environment(str(resolve_device(config.runtime.device))), "finetune": report,
    }
    out = save_run(output, model, history, metrics, config, data)
    for text in report_lines(report):
        print(text)
    print(f"Saved to {out}")
    if args.json:
        print(json.dumps({k: v for k, v in metrics.items() if k not in ("per_class_accuracy", "environment")}))
    return 0
