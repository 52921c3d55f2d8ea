"""Ensemble diversity: do five members that differ beat five seeds of one recipe? On the validation split.

Why: five seeds of one recipe tend to make the same mistakes, so their average gains little over its
best member; members that differ more are the usual answer. This measures that where it is cheap: every
member trains on the same 55,000 images and is scored on the same 5,000 held out (the split
`--val-split 5000 --seed 0` carves); the test set is only reported. Ensembles of five, member k of every
group with the same seed:

- seeds (the baseline, in the same run): the preset as it is;
- widths: the preset's net at five widths;
- recipes: five recipes (widths, augmentation, optimizer) that differ more;
- custom (only when asked): the preset with the settings of `--custom JSON` changed, e.g. longer
  training, weight averaging, another schedule or augmentation strength
  (`'{"epochs": 20, "warmup_epochs": 2}'`, `'{"ema_decay": 0.999}'`,
  `'{"schedule": "exponential", "augment_options": {"rotate": 20}}'`).

seeds and custom work with any preset; widths and recipes only with the presets in VARIANTS.

Each prints its members' validation errors, the ensemble's (softmax average, as `digitlab ensemble`),
and how many errors all five share. Members train one thread each, two at a time.

With `--choose K` it also picks, from all the members trained, the K whose averaged probabilities make
the fewest validation errors (ties: the lower validation log loss): an ensemble chosen on the validation
split, the legitimate way to mix groups. Every group's and the chosen ensemble's test accuracy is
printed beside, reported only: nothing is chosen by it. `--save DIR` writes each member's validation and
test probabilities to DIR/GROUP-K.npz as it finishes, so a run cut short still leaves its members
(`--save-models`: the models too, in DIR/GROUP-K/, loadable by `digitlab ensemble` and `evaluate`).

With `--tta shift4,shift8,...` every member is also scored with those test-time augmentation policies
(digitlab.evaluate.tta), and each group's policy is chosen on validation the same way: fewest errors,
ties to the lower log loss, "none" a candidate.

    .venv/bin/python bench/ensemble_diversity.py                                  # fast-99.5, ~15 min on 2 cores
    python3 bench/ensemble_diversity.py --preset best --device cuda --workers 10 --groups seeds,recipes \
        --choose 5 --save /tmp/members                                            # best's scale, one GPU
    python3 bench/ensemble_diversity.py --preset best --device cuda --workers 5 --groups seeds \
        --tta shift4,shift8,rotate,shift4-rotate --save /tmp/members --save-models

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import nonnegative_int, positive_int, with_one_line_errors  # noqa: E402

VAL_SPLIT, SPLIT_SEED = 5000, 0
# Per preset: the five widths of the "widths" group, and the five (widths, settings changed) of "recipes".
# (A plan entry is (model arguments changed or None, training settings changed).)
VARIANTS = {
    "fast-99.5": {
        "widths": [(16, 32, 96), (24, 48, 96), (32, 64, 128), (16, 48, 128), (24, 32, 64)],
        "recipes": [
            ((16, 32, 96), {}),
            ((32, 64, 128), {"augment": "elastic"}),
            ((24, 48, 96), {"optimizer": "adam", "lr": 0.01, "beta1": 0.7, "beta2": 0.9, "weight_decay": 0.0}),
            ((16, 48, 128), {"label_smoothing": 0.0}),
            ((32, 64, 128), {"augment": "none", "clean_epochs": 0, "epochs": 6}),
        ],
    },
    "best": {
        "widths": [(48, 96, 192), (32, 64, 128), (64, 128, 256), (40, 80, 160), (56, 112, 224)],
        "recipes": [
            ((48, 96, 192), {}),
            ((64, 128, 256), {"augment": "elastic"}),
            ((40, 80, 160), {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05}),
            ((56, 112, 224), {"label_smoothing": 0.0}),
            ((48, 96, 192), {"augment": "none", "epochs": 20, "warmup_epochs": 1}),
        ],
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from digitlab.train.presets import PRESETS

    p.add_argument("--preset", default="fast-99.5", choices=sorted(PRESETS))
    p.add_argument("--custom", default=None, metavar="JSON",
                   help="the custom group's settings over the preset's, as a JSON object of TrainConfig fields")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--workers", type=positive_int, default=2, help="members trained at a time (default 2)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads per member (default 1)")
    p.add_argument("--groups", default="seeds,widths,recipes",
                   help="comma-separated: seeds, widths, recipes, custom (default: the first three)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: digitlab's lookup)")
    p.add_argument("--first-seed", type=nonnegative_int, default=0, metavar="N",
                   help="member k of every group gets seed N+k (default 0): a replicate with other seeds")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 epoch on 6,000 images, 2 members per group")
    p.add_argument("--choose", type=positive_int, default=None, metavar="K",
                   help="also pick the K members (of all groups) whose ensemble makes the fewest validation errors")
    p.add_argument("--save", default=None, metavar="DIR", help="write each member's probabilities to DIR/GROUP-K.npz")
    p.add_argument("--save-models", action="store_true",
                   help="with --save: also each member's model (safetensors + JSON) in DIR/GROUP-K/")
    p.add_argument("--tta", default="none", metavar="POLICIES",
                   help="comma-separated test-time augmentation policies to score on validation beside none "
                        "(digitlab.evaluate.tta: shift4, shift8, rotate, shift4-rotate)")
    return p.parse_args(argv)


def members(preset: str, group: str, custom: str | None = None) -> list[tuple[dict | None, dict]]:
    """The five (model arguments changed, training settings changed) of a group; None keeps the preset's net.

    Every group's settings are checked here (as a TrainConfig and a built model), so a bad one fails
    before anything trains."""
    from digitlab.models.registry import build_model
    from digitlab.train.config import TrainConfig
    from digitlab.train.presets import get_preset

    plan = _plan(preset, group, custom)
    spec = get_preset(preset)
    for model_changes, changes in plan:
        TrainConfig.from_flat(**{**spec["config"], **changes})
        if model_changes:
            build_model(spec["model"], **{**spec.get("model_kwargs", {}), **model_changes})
    return plan


def _plan(preset: str, group: str, custom: str | None):
    from digitlab.errors import ConfigError

    if group == "seeds":
        return [(None, {})] * 5
    if group in ("widths", "recipes"):
        if preset not in VARIANTS:
            raise ConfigError(f"the {group} group is defined for {', '.join(sorted(VARIANTS))} only: "
                              "use seeds or custom with this preset")
        chosen = VARIANTS[preset][group]
        return ([({"widths": list(w)}, {}) for w in chosen] if group == "widths"
                else [({"widths": list(w)}, changes) for w, changes in chosen])
    if group == "custom":
        import json

        try:
            settings = json.loads(custom) if custom else None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--custom is not valid JSON ({exc.msg}): give an object such as "
                              "'{\"schedule\": \"exponential\"}'") from None
        if not isinstance(settings, dict) or not settings:
            raise ConfigError("the custom group needs --custom '{...}': a JSON object of the settings to change")
        return [(None, settings)] * 5
    raise ConfigError(f"unknown group {group!r}: choose from seeds, widths, recipes, custom")


def split(data, quick: bool):
    """The training images and the held-out validation images, as `--val-split 5000 --seed 0` carves them."""
    import torch

    from digitlab.train.tensors import split_validation

    x, y = torch.from_numpy(data.x_train.copy()), torch.from_numpy(data.y_train.astype("int64"))
    if quick:
        x, y = x[:6000], y[:6000]
    x_tr, y_tr, x_val, y_val = split_validation(x, y, 1000 if quick else VAL_SPLIT, SPLIT_SEED)
    return x_tr.numpy(), y_tr.numpy(), x_val.numpy(), y_val.numpy()


def train_member(job):
    """One member: (group, index, {TTA policy: (validation probabilities, test probabilities)}, seconds)."""
    group, index, seed, model_changes, changes, args = job
    import torch

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    from digitlab.data.dataset import load_dataset
    from digitlab.evaluate.metrics import predict_proba
    from digitlab.models.registry import build_model
    from digitlab.train.config import TrainConfig
    from digitlab.train.device import seed_everything
    from digitlab.train.loop import fit
    from digitlab.train.presets import get_preset

    preset = get_preset(args.preset)
    data = load_dataset("mnist", data_dir=args.data_dir, download=args.data_dir is None)
    x_tr, y_tr, x_val, _ = split(data, args.quick)
    settings = {**preset["config"], **changes, "seed": seed, "device": args.device, "threads": args.threads}
    if args.quick:
        settings.update(epochs=1, warmup_epochs=0.2, clean_epochs=0)
    kwargs = {**preset.get("model_kwargs", {}), **(model_changes or {})}
    seed_everything(seed)
    model = build_model(preset["model"], **kwargs)
    started = time.perf_counter()
    config = TrainConfig.from_flat(**settings)
    fit(model, x_tr, y_tr, config, verbose=False)
    seconds = time.perf_counter() - started
    x_test = data.x_test[:2000] if args.quick else data.x_test
    if args.save and args.save_models:
        from digitlab.models.storage import save_model

        save_model(model, Path(args.save) / f"{group}-{index}", train_config=config, classes=data.classes,
                   metrics={"dataset": "mnist", "train_images": len(y_tr), "train_time_s": round(seconds, 1),
                            "validation_split": f"--val-split {len(x_val)} --seed {SPLIT_SEED}"})
    probas = {t: (predict_proba(model, x_val, tta=t), predict_proba(model, x_test, tta=t)) for t in policies(args)}
    return group, index, probas, seconds


def policies(args) -> list[str]:
    """"none" first, then the --tta policies asked for (checked: a typo fails before anything trains)."""
    from digitlab.evaluate.tta import check_policy

    return list(dict.fromkeys(["none"] + [check_policy(t.strip()) for t in args.tta.split(",") if t.strip()]))


def main(argv=None) -> int:
    return with_one_line_errors("ensemble_diversity", run, parse_args(argv))


def run(args) -> int:
    import numpy as np

    from digitlab.data.dataset import load_dataset
    from digitlab.errors import ConfigError
    from digitlab.evaluate.ensemble import average_proba
    from digitlab.provenance import environment

    groups = list(dict.fromkeys(g.strip() for g in args.groups.split(",") if g.strip()))
    if not groups:
        raise ConfigError("--groups is empty: name at least one of seeds, widths, recipes, custom")
    plan = {g: members(args.preset, g, args.custom) for g in groups}
    ttas = policies(args)
    if args.save_models and not args.save:
        raise ConfigError("--save-models writes into the --save folder: give --save DIR too")
    data = load_dataset("mnist", data_dir=args.data_dir, download=args.data_dir is None)
    _, _, _, y_val = split(data, args.quick)
    y_test = (data.y_test[:2000] if args.quick else data.y_test).astype("int64")
    n_members = 2 if args.quick else 5
    env = environment(args.device)
    seeds = f"{args.first_seed}-{args.first_seed + n_members - 1}"
    print(f"Ensemble diversity: preset {args.preset}, {n_members} members per group, validation split "
          f"{len(y_val):,} images (seed {SPLIT_SEED}), member seeds {seeds}"
          + ("  QUICK MODE (not a measurement)" if args.quick else ""))
    print(f"  commit {env['commit']}  device {args.device}  {args.threads} thread(s) per member, "
          f"{args.workers} at a time  cpus {os.cpu_count()}")
    # Member k of every group gets the same seed: the groups differ only in what varies besides the seed.
    jobs = [(g, k, args.first_seed + k, model_changes, changes, args)
            for g in groups for k, (model_changes, changes) in enumerate(plan[g][:n_members])]
    probas: dict[str, dict[int, np.ndarray]] = {g: {} for g in groups}
    test_probas: dict[str, dict[int, np.ndarray]] = {g: {} for g in groups}
    # The same, per TTA policy: tta_probas[policy][group][k] = (validation, test).
    tta_probas: dict[str, dict[str, dict[int, tuple]]] = {t: {g: {} for g in groups} for t in ttas}
    # CUDA cannot be used in a forked child of a process that touched it (the header asked for the GPU's name).
    context = multiprocessing.get_context("fork" if args.device == "cpu" else "spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        for done in as_completed([pool.submit(train_member, job) for job in jobs]):
            group, k, by_policy, seconds = done.result()
            proba, test_proba = by_policy["none"]
            probas[group][k], test_probas[group][k] = proba, test_proba
            for t in ttas:
                tta_probas[t][group][k] = by_policy[t]
            if args.save:
                save_member(Path(args.save) / f"{group}-{k}.npz", by_policy, plan[group][k], seconds)
            model_changes, changes = plan[group][k]
            errors = int((proba.argmax(1) != y_val).sum())
            print(f"  {group:8s} member {k}  model {model_changes or 'preset'}  {changes or ''}  "
                  f"validation errors {errors}  {seconds:.0f}s", flush=True)

    figures = {"preset": args.preset, "commit": env["commit"], "device": args.device, "quick": args.quick,
               "first_seed": args.first_seed,
               "n_val": len(y_val), "groups": {}}
    print(f"\n{'group':8s} {'member errors':>22s} {'mean':>6s} {'ensemble':>9s} {'all share':>10s} {'accuracy':>9s}")
    for g in groups:
        member_probas = [probas[g][k] for k in sorted(probas[g])]
        wrong = [set(np.flatnonzero(p.argmax(1) != y_val)) for p in member_probas]
        ens_errors = int((average_proba(member_probas).argmax(1) != y_val).sum())
        test_acc = accuracy(average_proba([test_probas[g][k] for k in sorted(test_probas[g])]), y_test)
        row = {"member_errors": [len(w) for w in wrong], "ensemble_errors": ens_errors,
               "shared_by_all": len(set.intersection(*wrong)), "ensemble_accuracy": 1 - ens_errors / len(y_val),
               "test_accuracy_reported_only": test_acc}
        figures["groups"][g] = row
        print(f"{g:8s} {str(row['member_errors']):>22s} {np.mean(row['member_errors']):6.1f} {ens_errors:9d} "
              f"{row['shared_by_all']:10d} {row['ensemble_accuracy']:9.4f}   test {test_acc:.4f} (reported only)")
    base = figures["groups"].get("seeds")
    if base:
        for g, row in figures["groups"].items():
            if g != "seeds":
                row["vs_seeds"] = row["ensemble_errors"] - base["ensemble_errors"]
                print(f"=> {g}: {row['vs_seeds']:+d} errors against the seeds' ensemble "
                      f"({base['ensemble_errors']} of {len(y_val):,})")
    if len(ttas) > 1:
        figures["tta"] = tta_table(tta_probas, y_val, y_test)
    if args.choose:
        figures["chosen"] = choose_on_validation(probas, test_probas, y_val, y_test, args.choose)
        c = figures["chosen"]
        if c:
            print(f"=> chosen on validation: {', '.join(c['members'])}: {c['ensemble_errors']} validation errors "
                  f"(of {c['candidates']} candidates, {c['subsets']} subsets); test {c['test_accuracy_reported_only']:.4f} "
                  "(reported only)")
        else:
            print(f"=> --choose {args.choose}: fewer members finished than that")
    print(json.dumps(figures))
    return 0


def accuracy(proba, y) -> float:
    return float((proba.argmax(1) == y).mean())


def choose_on_validation(probas: dict, test_probas: dict, y_val, y_test, k: int) -> dict | None:
    """The k members whose averaged validation probabilities make the fewest errors (ties: lower log loss).

    Exhaustive over the subsets (10 choose 5 is 252): the choice sees validation labels only; the chosen
    ensemble's test accuracy is computed afterwards, to report."""
    from itertools import combinations

    import numpy as np

    from digitlab.evaluate.ensemble import average_proba

    names = [f"{g}-{i}" for g in probas for i in sorted(probas[g])]
    val = {f"{g}-{i}": probas[g][i] for g in probas for i in probas[g]}
    test = {f"{g}-{i}": test_probas[g][i] for g in test_probas for i in test_probas[g]}
    if len(names) < k:
        return None

    def score(subset):
        p = average_proba([val[n] for n in subset])
        errors = int((p.argmax(1) != y_val).sum())
        log_loss = float(-np.log(np.clip(p[np.arange(len(y_val)), y_val], 1e-12, None)).mean())
        return errors, log_loss

    subsets = list(combinations(names, k))
    best = min(subsets, key=score)
    errors, log_loss = score(best)
    return {"members": list(best), "ensemble_errors": errors, "val_log_loss": log_loss, "candidates": len(names),
            "subsets": len(subsets), "test_accuracy_reported_only": accuracy(average_proba([test[n] for n in best]), y_test)}


def tta_table(tta_probas: dict, y_val, y_test) -> dict:
    """Per group: each TTA policy's ensemble validation errors (and log loss), and the policy chosen on them.

    The choice is the fewest validation errors, ties to the lower validation log loss; the test accuracy of
    every row is printed beside, reported only."""
    import numpy as np

    from digitlab.evaluate.ensemble import average_proba

    out: dict = {}
    print(f"\n{'group':8s} {'TTA':>14s} {'member errors':>22s} {'ensemble':>9s} {'log loss':>9s}   test (reported only)")
    for g in next(iter(tta_probas.values())):
        rows = {}
        for t, by_group in tta_probas.items():
            members_ = [by_group[g][k] for k in sorted(by_group[g])]
            val = average_proba([v for v, _ in members_])
            errors = int((val.argmax(1) != y_val).sum())
            log_loss = float(-np.log(np.clip(val[np.arange(len(y_val)), y_val], 1e-12, None)).mean())
            rows[t] = {"member_errors": [int((v.argmax(1) != y_val).sum()) for v, _ in members_],
                       "ensemble_errors": errors, "val_log_loss": log_loss,
                       "test_accuracy_reported_only": accuracy(average_proba([te for _, te in members_]), y_test)}
            r = rows[t]
            print(f"{g:8s} {t:>14s} {str(r['member_errors']):>22s} {errors:9d} {log_loss:9.4f}   "
                  f"{r['test_accuracy_reported_only']:.4f}")
        chosen = min(rows, key=lambda t: (rows[t]["ensemble_errors"], rows[t]["val_log_loss"]))
        out[g] = {"policies": rows, "chosen_on_validation": chosen}
        print(f"=> {g}: TTA chosen on validation: {chosen} ({rows[chosen]['ensemble_errors']} errors against "
              f"{rows['none']['ensemble_errors']} without); test {rows[chosen]['test_accuracy_reported_only']:.4f} "
              "(reported only)")
    return out


def save_member(path: Path, by_policy: dict, spec, seconds: float) -> None:
    """One member's probabilities (val, test; val_POLICY, test_POLICY for each TTA policy), written whole."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    model_changes, changes = spec
    arrays = {}
    for t, (val, test) in by_policy.items():
        suffix = "" if t == "none" else f"_{t}"
        arrays[f"val{suffix}"], arrays[f"test{suffix}"] = val, test
    np.savez_compressed(tmp, **arrays, seconds=seconds, spec=json.dumps({"model": model_changes, "changes": changes}))
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
