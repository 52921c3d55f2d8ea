"""`digitlab train`: train a model (or a preset) and save the run folder."""

from __future__ import annotations

import argparse

from digitlab.cli.common import add_data_args, add_device_args, load_data

# CLI flag -> its TrainConfig flat name (TrainConfig.from_flat routes each to its group) and type. Flags
# default to None so that a preset's values survive unless the user sets the flag explicitly.
CONFIG_FLAGS = {
    "epochs": int, "batch_size": int, "optimizer": str, "lr": float, "momentum": float, "beta1": float, "beta2": float,
    "weight_decay": float, "schedule": str, "warmup_epochs": float, "label_smoothing": float,
    "augment": str, "clean_epochs": int, "val_split": int, "early_stopping": int, "seed": int,
    "teacher": str, "distill_weight": float, "distill_temperature": float, "compile_mode": str,
    "ema_decay": float, "lr_decay": float, "synthetic_fonts": int, "blend_start": float,
}
BOOL_FLAGS = ("keep_best", "channels_last", "compile", "cpu_amp", "fused")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--model and --preset, which resolve_config() merges; shared by train, cv and sweep."""
    from digitlab.train.presets import PRESETS

    parser.add_argument("--model", help="model architecture (see `digitlab models`; default mlp), trained "
                        "with the default settings unless --preset gives a recipe")
    parser.add_argument("--preset", help=f"a tuned recipe (model and settings): {', '.join(PRESETS)}; "
                        "fast is 99%% in seconds on a CPU (flags override)")


def add_train_config_args(parser: argparse.ArgumentParser) -> None:
    """The training settings, shared by train, cv and sweep."""
    from digitlab.train.config import AUGMENTS, COMPILE_MODES, OPTIMIZERS, SCHEDULES

    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="epochs (default 5)")
    g.add_argument("--batch-size", type=int, help="batch size (default 128)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="default rmsprop (Keras defaults)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: the optimizer's Keras default)")
    g.add_argument("--momentum", type=float, help="sgd momentum (default 0.9, Nesterov)")
    g.add_argument("--beta1", type=float, help="adam/adamw: the gradient average's decay (default 0.9)")
    g.add_argument("--beta2", type=float, help="adam/adamw: the squared gradient average's decay (default 0.999)")
    g.add_argument("--weight-decay", type=float, help="weight decay (decoupled for adamw)")
    g.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default constant)")
    g.add_argument("--lr-decay", type=float, metavar="F",
                   help="the exponential schedule's factor per epoch (default 0.98)")
    g.add_argument("--warmup", dest="warmup_epochs", type=float, help="linear warm-up, in epochs")
    g.add_argument("--label-smoothing", type=float, help="label smoothing in [0, 1)")
    g.add_argument("--augment", choices=AUGMENTS, help="batched augmentation (default none)")
    g.add_argument("--augment-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="augmentation strength over its defaults, e.g. --augment-arg rotate=20 (repeatable; "
                        "affine: rotate, shift (px), scale, shear; elastic adds alpha, sigma)")
    g.add_argument("--clean-epochs", type=int, metavar="N", help="train the last N epochs without augmentation")
    g.add_argument("--synthetic-fonts", type=int, metavar="N",
                   help="add N digits rendered from the machine's fonts (flagged 1s, crossed 7s, ...) to the "
                        "training images (default 0)")
    g.add_argument("--teacher", metavar="RUN_OR_FILE",
                   help="distil from this model's soft predictions (a run folder, .safetensors, or 'pretrained')")
    g.add_argument("--distill-weight", type=float, metavar="W", help="the teacher term's share of the loss (default 0.5)")
    g.add_argument("--distill-temperature", type=float, metavar="T", help="distillation temperature (default 2)")
    g.add_argument("--val-split", type=int, help="hold out N training images for validation")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after N epochs without val_loss gain")
    g.add_argument("--keep-best", action="store_true", default=None, help="restore the best val_loss weights")
    g.add_argument("--ema-decay", type=float, metavar="D",
                   help="end with an exponential moving average of the weights, updated every step (e.g. 0.999; "
                        "default 0 = off)")
    g.add_argument("--blend-start", type=float, metavar="S",
                   help="with --from/--pretrained: end with the weights blended this share of the way back to the "
                        "starting ones, keeping what that model knew (e.g. 0.5; default 0 = off)")
    g.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory layout")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--compile-mode", choices=COMPILE_MODES, metavar="MODE",
                   help=f"torch.compile mode, implies --compile: {', '.join(COMPILE_MODES)} (default: default; "
                        "reduce-overhead replays each step as a CUDA graph)")
    g.add_argument("--cpu-bf16", dest="cpu_amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast when training on a CPU (default: on where the CPU has bf16 hardware, "
                        "AVX-512 BF16 or AMX; float32 elsewhere)")
    g.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="train the mlp on a CPU through its fused step with hand-written gradients, the same "
                        "training about 2x faster (default: on; --no-fused uses the general autograd loop)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture argument, e.g. --model-arg dropout=0.2 (repeatable)")


def parse_model_args(pairs: list[str], flag: str = "--model-arg") -> dict:
    """KEY=VALUE pairs -> dict; values as JSON where they parse (numbers, lists), else strings."""
    import json

    from digitlab.errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def resolve_config(args, default_model: str = "mlp"):
    """The flags -> (model_name, model_kwargs, TrainConfig), through digitlab.workflows.presets."""
    from digitlab.workflows.presets import resolve_config as resolve

    settings = {name: getattr(args, name, None) for name in (*CONFIG_FLAGS, *BOOL_FLAGS)}
    settings.update(device=args.device, threads=args.threads)
    augment_args = getattr(args, "augment_arg", None)
    augment_options = parse_model_args(augment_args, "--augment-arg") if augment_args else None
    return resolve(getattr(args, "preset", None), getattr(args, "model", None),
                   model_kwargs=parse_model_args(args.model_arg), settings=settings,
                   augment_options=augment_options, default_model=default_model)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model and save it (safetensors + JSON), its history and learning curves",
        description="Train a model. Example (the article): digitlab train --model mlp --epochs 5 --batch-size 128 -o runs/mlp",
    )
    add_model_args(p)
    p.add_argument("-o", "--output", default=None, help="run folder to write (default runs/<model>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the output folder (its old files go once the new run is saved)")
    p.add_argument("--validate-on-test", action="store_true",
                   help="evaluate on the test set every epoch for the learning curves, as the article does")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the metrics")
    add_train_config_args(p)
    add_data_args(p)
    add_device_args(p)
    from digitlab.cli.train_images import add_images_args

    add_images_args(p)
    g = p.add_argument_group("start from a trained model (fine-tuning)")
    g.add_argument("--from", metavar="RUN", help="start from this saved model's architecture and weights "
                   "(a run folder or .safetensors); the run records it")
    g.add_argument("--pretrained", action="store_true", help="start from the shipped model (as --from pretrained)")
    g = p.add_argument_group("checkpoints (see digitlab.train.checkpoint)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="write RUN_DIR/checkpoints/epoch-NNNN every N epochs (default: no checkpoints)")
    g.add_argument("--keep-checkpoints", type=int, default=None, metavar="K", help="keep the newest K (default 3)")
    g.add_argument("--resume", metavar="RUN_DIR",
                   help="continue RUN_DIR from its last complete checkpoint, with the settings saved in it")
    p.set_defaults(handler=run, trains=True)


def _resume_plan(args):
    """(model, model_kwargs, config, output, callbacks) for `--resume RUN_DIR`: the saved settings win."""
    from digitlab.errors import ConfigError
    from digitlab.train.checkpoint import CheckpointCallback, load_for_resume

    given = [f"--{n.replace('_', '-')}" for n in ("model", "preset", "output", *CONFIG_FLAGS, *BOOL_FLAGS)
             if getattr(args, n, None) is not None] + (["--model-arg"] if args.model_arg else []) + (
                 ["--augment-arg"] if getattr(args, "augment_arg", None) else [])
    if given:
        raise ConfigError(f"--resume continues with the settings saved in the checkpoint: drop {', '.join(given)}")
    checkpoint = load_for_resume(args.resume)
    extra, arch = checkpoint.extra, checkpoint.meta.get("architecture") or {}
    config = checkpoint.config
    if config.regularisation.blend_start:
        raise ConfigError(f"{args.resume} ends by blending back to the weights it started from, which checkpoints "
                          "do not keep, so it cannot resume: train it again")
    if args.threads is not None:
        config = config.replace(threads=args.threads)
    args.dataset = extra.get("dataset", args.dataset)
    args.data_dir = args.data_dir or extra.get("data_dir")
    args.validate_on_test, args.preset = bool(extra.get("validate_on_test")), extra.get("preset")
    every = args.checkpoint_every or extra.get("every", 1)
    keep = args.keep_checkpoints or extra.get("keep", 3)
    print(f"Resuming {args.resume} from {checkpoint.folder.name} ({checkpoint.epoch}/{config.epochs} epochs done)")
    callback = CheckpointCallback(args.resume, every, keep, resume_from=checkpoint, extra={**extra, "every": every, "keep": keep})
    return arch["name"], dict(arch.get("kwargs") or {}), config, args.resume, [callback]


def _checkpoint_callbacks(args, model, output) -> list:
    import os

    from digitlab.train.checkpoint import CheckpointCallback

    if args.checkpoint_every is None:
        return []
    keep = args.keep_checkpoints or 3
    extra = {"model": model, "dataset": args.dataset, "preset": args.preset,
             "data_dir": os.path.abspath(args.data_dir) if args.data_dir else None,
             "validate_on_test": args.validate_on_test, "every": args.checkpoint_every, "keep": keep}
    return [CheckpointCallback(output, args.checkpoint_every, keep, extra=extra)]


def _start_from(args) -> str | None:
    """The saved model a run starts from (--from RUN, --pretrained), checked before any data loads."""
    from digitlab.errors import ConfigError, ModelError
    from digitlab.models.storage import resolve_model_files

    source = getattr(args, "from", None)
    if args.pretrained:
        if source not in (None, "pretrained"):
            raise ConfigError("--pretrained starts from the shipped model and --from from another: choose one")
        source = "pretrained"
    if source is None:
        return None
    if args.model or args.model_arg:
        raise ConfigError("--from/--pretrained train the saved model's architecture: drop --model and --model-arg")
    if source != "pretrained":
        try:
            resolve_model_files(source)
        except ModelError as exc:
            raise ModelError(f"--from: {exc}") from None
    return source


def run(args) -> int:
    import json

    from digitlab.errors import ConfigError
    from digitlab.files import file_states, prepare_output_dir, remove_stale
    from digitlab.workflows.train_run import train_run

    if args.images:
        from digitlab.cli.train_images import finetune_source, run_images

        return run_images(args, finetune_source(args), (*CONFIG_FLAGS, *BOOL_FLAGS), parse_model_args)
    if args.resume:
        if args.overwrite:
            raise ConfigError("--overwrite starts the run afresh and --resume continues it: choose one")
        model, model_kwargs, config, output, callbacks = _resume_plan(args)
        prepare_output_dir(output, resume=True)
    else:
        model, model_kwargs, config = resolve_config(args)
        start_from = _start_from(args)
        output = args.output or f"runs/{args.preset or model}"
        before = file_states(output)
        source = config.regularisation.teacher
        teacher = () if source in (None, "pretrained") else (source,)
        # Before the data loads and training starts: an unwritable folder or an existing run fails now.
        prepare_output_dir(output, overwrite=args.overwrite, keep=teacher,
                           flag_hint="--overwrite (or --resume RUN_DIR to continue it)")
        callbacks = _checkpoint_callbacks(args, model, output)
    data = load_data(args)
    result = train_run(model, config, data, output, model_kwargs=model_kwargs, callbacks=callbacks,
                       validate_on_test=args.validate_on_test, preset=args.preset,
                       start_from=None if args.resume else start_from)
    if args.overwrite:
        remove_stale(output, before)  # the replaced run's files this run did not write (report.html, ...)
    m = result.metrics
    print(f"Train loss: {m['train_loss']:.4f} - train accuracy: {m['train_accuracy']:.4f} "
          f"({m['epochs_run']} epochs, {m['train_time_s']:.1f}s)")
    print(f"Test loss: {m['test_loss']:.4f} - test accuracy: {m['test_accuracy']:.4f}")
    print(f"Saved to {result.output}")
    if args.json:
        print(json.dumps({k: v for k, v in m.items() if k not in ("per_class_accuracy", "environment")}))
    return 0
