"""`digitlab ensemble`: average saved runs' softmax outputs, or train N seeds of a preset and average them.

    digitlab ensemble runs/a runs/b runs/c -o runs/ens          # existing runs
    digitlab ensemble --train best --seeds 5 -o runs/ens        # trains runs/ens/seed-0 .. seed-4 first

Writes OUTPUT/ensemble.json: every member's test accuracy and the ensemble's.
"""

from __future__ import annotations

from digitlab.cli.common import add_data_args, add_device_args
from digitlab.cli.train import BOOL_FLAGS, CONFIG_FLAGS, add_train_config_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ensemble", help="average the softmax outputs of several runs (or train N seeds of a preset) and test it",
        description="Example: digitlab ensemble --train best --seeds 5 -o runs/ens  "
                    "(or: digitlab ensemble runs/a runs/b runs/c -o runs/ens)",
    )
    p.add_argument("runs", nargs="*", help="run folders (or model files) to combine")
    p.add_argument("--train", metavar="PRESET", help="train the members first: N seeds of this preset")
    p.add_argument("--seeds", type=int, default=5, help="members to train with --train (default 5)")
    p.add_argument("-o", "--output", default="runs/ensemble", help="folder for ensemble.json (and the members)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in the output folder")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    p.add_argument("--tta", default="none", metavar="POLICY",
                   help="test-time augmentation for every member: none (default), shift4, shift8, rotate, shift4-rotate")
    add_train_config_args(p)
    add_data_args(p)
    add_device_args(p)
    p.set_defaults(handler=run, trains=True)


def _arguments(args) -> dict:
    return {k: v for k, v in vars(args).items() if k != "handler"}


def run(args) -> int:
    import json

    from digitlab.cli.common import load_data
    from digitlab.cli.train import resolve_config
    from digitlab.errors import ConfigError
    from digitlab.evaluate.ensemble import evaluate_ensemble
    from digitlab.files import file_states, prepare_output_dir, remove_stale
    from digitlab.evaluate.tta import check_policy
    from digitlab.train.device import resolve_device
    from digitlab.workflows.ensemble import train_members

    check_policy(args.tta)  # before any training
    if bool(args.runs) == bool(args.train):
        raise ConfigError("give run folders to combine, or --train PRESET --seeds N (not both)")
    device = str(resolve_device(args.device))
    before = file_states(args.output)
    # The runs being combined may not live in a folder that --overwrite would clear.
    prepare_output_dir(args.output, overwrite=args.overwrite, keep=tuple(args.runs))
    if args.train:
        args.preset, args.model = args.train, None
        model, model_kwargs, config = resolve_config(args)
        data = load_data(args)
        paths = train_members(args.train, model, model_kwargs, config, data, args.output, args.seeds)
    else:
        given = [f"--{n.replace('_', '-')}" for n in (*CONFIG_FLAGS, *BOOL_FLAGS) if getattr(args, n, None) is not None]
        given += [f for f, v in (("--model-arg", args.model_arg), ("--augment-arg", args.augment_arg)) if v]
        if given:
            raise ConfigError(f"training flags ({', '.join(given)}) only apply with --train PRESET")
        data = load_data(args)
        paths = args.runs
    result = evaluate_ensemble(paths, data, args.output, device=device, extra={"arguments": _arguments(args)},
                               tta=args.tta)
    if args.overwrite:
        remove_stale(args.output, before)

    width = max(len(m["run"]) for m in result["members"])
    for m in result["members"]:
        print(f"  {m['run']:<{width}}  test accuracy {m['test_accuracy']:.4f}  ({m['errors']} errors)")
    ens = result["ensemble"]
    tta = "" if result["tta"] == "none" else f" with TTA {result['tta']}"
    print(f"Ensemble of {result['n_members']}{tta}: test accuracy {ens['accuracy']:.4f} ({ens['errors']} errors in "
          f"{ens['n']:,}); members: mean {result['mean_member_accuracy']:.4f}, best {result['best_member_accuracy']:.4f}")
    print(f"Saved to {args.output}/ensemble.json")
    if args.json:
        print(json.dumps({"n_members": result["n_members"], "ensemble_accuracy": ens["accuracy"],
                          "member_accuracies": [m["test_accuracy"] for m in result["members"]],
                          "mean_member_accuracy": result["mean_member_accuracy"], "tta": result["tta"]}))
    return 0
