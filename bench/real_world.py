"""Real-world accuracy: the digits people actually have, read through `predict`'s path.

For each set, three recognisers measured in the same run on the same images:
  shipped   the shipped model behind the full preprocessing (`digitlab predict`);
  previous  the previous release's model (bench/previous_model/) behind the same preprocessing;
  naive     a plain resize of the image to 28x28 (no inversion, no cropping) fed to the shipped model.
Sets: MNIST test (the models alone); scikit-learn's `load_digits` as they are (8x8, dark ink on white,
no margin, as PNGs); realdigits-dev per source and per kind (measured only: nothing is tuned on it);
stress sets generated (seeded) from MNIST test digits and held-out fonts (see real_world_sets.py);
one of them, `blank`, is photos of paper with no digit, where the right answer is "no digit" (and
`read`'s is nothing: it is left out of the read == predict figure).
Also: how often `read` answers what `predict` answers on single digits.

    .venv/bin/python bench/real_world.py            # about 7 minutes on one core of a 2-core machine
    .venv/bin/python bench/real_world.py --quick    # smoke test

Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_json, nonnegative_int, positive_int, setup_lines, with_one_line_errors  # noqa: E402

HERE = Path(__file__).resolve().parent
GOALS = {"mnist": 0.996, "sklearn_digits": 0.95, "realdigits": 0.99, "realdigits_each_source": 0.95,
         "tight16": 0.98, "ruled": 0.97, "grid": 0.97, "flagged1": 0.95, "read_agrees": 1.0}
MODELS = ("shipped", "previous", "naive")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stress", type=positive_int, default=1000, help="images per stress set (default 1000)")
    p.add_argument("--mnist", type=positive_int, default=10000, help="MNIST test images (default all 10,000)")
    p.add_argument("--sklearn", type=positive_int, default=1797, help="scikit-learn digits (default all 1,797)")
    p.add_argument("--agreement", type=nonnegative_int, default=300,
                   help="single digits per set read with both `read` and `predict` (default 300)")
    p.add_argument("--realdigits", default=None, metavar="DIR",
                   help="realdigits-dev folder (default $DIGITLAB_DATA_DIR/realdigits-dev)")
    p.add_argument("--previous", default=str(HERE / "previous_model"), metavar="RUN",
                   help="the previous release's model (default bench/previous_model)")
    p.add_argument("--model", default=None, help="the model to measure (default: the shipped model)")
    p.add_argument("--seed", type=nonnegative_int, default=1)
    p.add_argument("--quick", action="store_true", help="smoke test: at most 30 images per set (realdigits-dev whole)")
    return p.parse_args(argv)


def realdigits_root(given: str | None) -> Path:
    from digitlab.errors import DataError

    root = Path(given) if given else Path(os.environ.get("DIGITLAB_DATA_DIR", "../shared/data")) / "realdigits-dev"
    if not (root / "manifest.csv").is_file():
        raise DataError(f"realdigits-dev not found at {root} (no manifest.csv): pass --realdigits DIR "
                        "or set DIGITLAB_DATA_DIR to the folder holding realdigits-dev/")
    return root


def answers(rec, previous, images: list[bytes]) -> dict[str, np.ndarray]:
    """The digit each recogniser answers (-1: none) for encoded images. The previous model sees the
    28x28 images the shipped path made (the preprocessing does not depend on the model)."""
    from render import naive_28  # on the path through real_world_sets

    preds = rec.predict(images)
    shipped = np.array([-1 if p.digit is None else p.digit for p in preds])
    prepared = [i for i, p in enumerate(preds) if p.image28 is not None]
    prev = np.full(len(images), -1)
    if prepared:
        prev[prepared] = previous.predict_batch28(np.stack([preds[i].image28 for i in prepared])).argmax(1)
    naive = rec.predict_batch28(np.stack([naive_28(b) for b in images])).argmax(1)
    return {"shipped": shipped, "previous": prev, "naive": naive}


def accuracies(found: dict[str, np.ndarray], labels: np.ndarray, rows=None) -> dict:
    rows = np.arange(len(labels)) if rows is None else rows
    out = {m: float((found[m][rows] == labels[rows]).mean()) for m in MODELS}
    out["n"] = int(len(rows))
    return out


def read_agreement(rec, images: list[bytes], predicted: np.ndarray) -> tuple[int, int]:
    """(agreeing, total): `read` answers the digit `predict` answered (or nothing where it found none)."""
    agree = 0
    for data, digit in zip(images, predicted):
        agree += rec.read(data).number == ("" if digit < 0 else rec.classes[digit])
    return agree, len(images)


def line(name: str, acc: dict, seconds: float | None, goal: float | None) -> str:
    verdict = "" if goal is None else f"  goal >= {goal:.3f}: {'met' if acc['shipped'] >= goal else 'NOT met'}"
    took = " " * 8 if seconds is None else f"{seconds:6.1f} s"
    return (f"  {name:<22} {acc['n']:>6}  {acc['shipped']:.4f}    {acc['previous']:.4f}    {acc['naive']:.4f}"
            f"  {took}{verdict}")


def main(argv=None) -> int:
    args = parse_args(argv)
    return with_one_line_errors("real_world.py", body, args)


def body(args) -> int:
    if args.quick:  # at most 30 images per set
        args.stress, args.mnist, args.sklearn = (min(v, 30) for v in (args.stress, args.mnist, args.sklearn))
        args.agreement = min(args.agreement, 30)
    from real_world_sets import STRESS_SETS, realdigits, sklearn_digits, stress_set

    from digitlab.data.dataset import load_dataset
    from digitlab.inference.recognizer import Recognizer

    root = realdigits_root(args.realdigits)
    env = setup_lines("cpu")
    data = load_dataset("mnist", download=False)
    rec = Recognizer.load(args.model)
    previous = Recognizer.load(args.previous)
    print(f"shipped: {rec.info['path']} (recorded MNIST test {rec.info['test_accuracy']}); "
          f"previous: {previous.info['path']} (recorded {previous.info['test_accuracy']})")
    print(f"\n  {'set':<22} {'n':>6}  {'shipped':<8}  {'previous':<8}  {'naive':<6}  time (all three)")
    sets: dict[str, dict] = {}
    agreement, blank_reads = [0, 0], [0, 0]

    started = time.perf_counter()
    x = data.x_test[: args.mnist].astype(np.float32) / 255.0
    shipped = rec.predict_batch28(x).argmax(1)  # naive = shipped: a 28x28 MNIST image is already 28x28
    found = {"shipped": shipped, "previous": previous.predict_batch28(x).argmax(1), "naive": shipped}
    sets["mnist"] = accuracies(found, data.y_test[: args.mnist])
    print(line("MNIST test", sets["mnist"], time.perf_counter() - started, GOALS["mnist"]))

    def measure(name: str, images: list[bytes], labels: np.ndarray, title: str) -> dict:
        started = time.perf_counter()
        found = answers(rec, previous, images)
        sets[name] = accuracies(found, labels)
        print(line(title, sets[name], time.perf_counter() - started, GOALS.get(name)))
        if args.agreement and name == "blank":  # no digit to agree on: does read answer nothing?
            blank_reads[:] = [sum(rec.read(b).number == "" for b in images[: args.agreement]), args.agreement]
        elif args.agreement:
            a, n = read_agreement(rec, images[: args.agreement], found["shipped"][: args.agreement])
            agreement[0] += a
            agreement[1] += n
        return found

    digits = sklearn_digits(args.sklearn)
    measure("sklearn_digits", [b for b, _ in digits], np.array([y for _, y in digits]), "sklearn digits (8x8)")
    real = realdigits(root)
    labels = np.array([r[1] for r in real])
    found = measure("realdigits", [r[0] for r in real], labels, "realdigits-dev")
    groups = {"source": defaultdict(list), "kind": defaultdict(list)}
    for i, (_, _, source, kind) in enumerate(real):
        groups["source"][source].append(i)
        groups["kind"][kind].append(i)
    per = {g: {k: accuracies(found, labels, np.array(v)) for k, v in sorted(rows.items())}
           for g, rows in groups.items()}
    for kind, acc in per["kind"].items():
        print(line(f"  kind {kind}", acc, None, None))
    for source, acc in per["source"].items():
        print(line(f"  source {source}", acc, None, GOALS["realdigits_each_source"]))
    worst = min(per["source"].items(), key=lambda kv: kv[1]["shipped"])
    for name in STRESS_SETS:
        try:
            made = stress_set(name, data.x_test, data.y_test, args.stress, args.seed)
        except ImportError as exc:  # the font sets need digitlab.data.synthetic
            print(f"  {name:<22} skipped: {exc}")
            continue
        measure(name, [b for b, _ in made], np.array([y for _, y in made]), name)

    agrees = agreement[0] / agreement[1] if agreement[1] else None
    if agrees is not None:
        print(f"\nread == predict on single digits: {agrees:.4f} ({agreement[0]} of {agreement[1]}; "
              f"up to {args.agreement} per set); goal {GOALS['read_agrees']:.0%}: "
              f"{'met' if agrees >= GOALS['read_agrees'] else 'NOT met'}")
    if blank_reads[1]:
        print(f"read on blank photos: no digits on {blank_reads[0]} of {blank_reads[1]}")
    print(f"realdigits-dev worst source: {worst[0]} {worst[1]['shipped']:.4f} "
          f"(goal >= {GOALS['realdigits_each_source']} on each)")
    met = {k: sets[k]["shipped"] >= g for k, g in GOALS.items() if k in sets}
    met["realdigits_each_source"] = worst[1]["shipped"] >= GOALS["realdigits_each_source"]
    if agrees is not None:
        met["read_agrees"] = agrees >= GOALS["read_agrees"]
    print(f"goals met: {sum(met.values())} of {len(met)}")
    emit_json({
        "bench": "real_world", "seed": args.seed, "quick": args.quick, "sets": sets,
        "realdigits_per_source": per["source"], "realdigits_per_kind": per["kind"],
        "read_agrees": agrees, "read_agreement_n": agreement[1],
        "read_blank_quiet": blank_reads[0] / blank_reads[1] if blank_reads[1] else None,
        "goals": GOALS, "met": met,
        "model": rec.info["path"], "previous_model": previous.info["path"], "commit": env["commit"],
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
