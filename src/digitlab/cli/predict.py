"""`digitlab predict`: the digit in each of your own images (files or folders of them).

Each image is preprocessed the way MNIST was made (see digitlab.inference.preprocess) before the
model sees it. A file that cannot be read gets a one-line error on stderr and the rest go on; the
exit code is 1 when any input failed.
"""

from __future__ import annotations

import argparse

DEFAULT_BATCH = 256


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--model, --runtime, --min-confidence, --max-pixels: shared by predict and read."""
    parser.add_argument("--model", default=None, metavar="RUN_OR_FILE",
                        help="run folder, .safetensors/.json model or .onnx file (default: the shipped model)")
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                        help="torch, or onnx (ONNX Runtime; a torch model is exported on the fly)")
    parser.add_argument("--min-confidence", type=float, default=None, metavar="P",
                        help="answers whose top probability is below P are marked unsure (default: 0.95 for a "
                             "model calibrated with `digitlab calibrate`, as the shipped one is; 0.7 otherwise)")
    parser.add_argument("--max-pixels", type=int, default=50_000_000, metavar="N",
                        help="refuse images with more than N pixels, before decoding (default 50,000,000)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="recognise the digit in your own images (files or folders)")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER", help="image files (PNG, JPEG, BMP, GIF, TIFF, WebP) or folders")
    add_model_args(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per input (JSON Lines)")
    out.add_argument("--csv", action="store_true", help="CSV with a header row")
    p.add_argument("--show", metavar="GRID.PNG", help="write each input beside the 28x28 the model saw")
    p.add_argument("--recursive", action="store_true", help="look for images in sub-folders too")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"images per batch (default {DEFAULT_BATCH})")
    p.set_defaults(handler=run)


def expand_inputs(inputs: list[str], recursive: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """(image paths, [(input, error)]): folders become their image files, sorted."""
    from pathlib import Path

    from digitlab.inference.decode import IMAGE_SUFFIXES

    files: list[str] = []
    problems: list[tuple[str, str]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((raw, f"the folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
                                      + ("" if recursive else "; use --recursive for sub-folders")))
            files.extend(str(p) for p in found)
        elif path.exists():
            files.append(raw)
        else:
            problems.append((raw, f"no such file or folder: {raw} (check the path)"))
    return files, problems


def _progress(total: int):
    """A rich progress bar on stderr when stderr is a terminal and there is enough to wait for."""
    import sys

    if total <= DEFAULT_BATCH or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rich.console import Console

    bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    bar.add_task("predict", total=total)
    return bar


def _text_line(p) -> str:
    if p.digit is None:
        return f"{p.source}: no digit found" + (f" ({p.note})" if p.note else "")
    top = ", ".join(f"{d} {q:.3f}" for d, q in p.top(3))
    flag = "  UNSURE" if p.unsure else ""
    note = f"  (note: {p.note})" if p.note else ""
    return f"{p.source}: {p.digit}  confidence {p.confidence:.3f}{flag}  top 3: {top}{note}"


CSV_HEADER = ["file", "digit", "confidence", "unsure", "top1", "p1", "top2", "p2", "top3", "p3", "note", "error"]


def _csv_row(p) -> list:
    top = [v for d, q in p.top(3) for v in (d, f"{q:.6f}")]
    top += [""] * (6 - len(top))
    digit = "" if p.digit is None else p.digit
    return [p.source, digit, f"{p.confidence:.6f}", int(p.unsure), *top, p.note or "", p.error or ""]


def run(args) -> int:
    import csv
    import json
    import sys

    from digitlab.errors import ConfigError
    from digitlab.inference.recognizer import Prediction, Recognizer

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    files, problems = expand_inputs(args.inputs, args.recursive)
    rec = Recognizer.load(args.model, runtime=args.runtime, min_confidence=args.min_confidence,
                          max_pixels=args.max_pixels)
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(CSV_HEADER)
    failed = 0

    def emit(p: Prediction) -> None:
        nonlocal failed
        if p.error:
            failed += 1
            print(f"digitlab predict: {p.source}: {p.error}", file=sys.stderr)
        if args.json:
            print(json.dumps(p.to_dict()))
        elif writer:
            writer.writerow(_csv_row(p))
        elif not p.error:
            print(_text_line(p))

    for raw, message in problems:
        emit(Prediction(raw, None, 0.0, (), True, None, error=message))
    shown: list = []
    bar = _progress(len(files))
    try:
        for start in range(0, len(files), args.batch_size):
            chunk = files[start : start + args.batch_size]
            for p in rec.predict(chunk):
                emit(p)
                if args.show and len(shown) < 60:
                    shown.append(p)
            sys.stdout.flush()
            if bar:
                bar.advance(bar.task_ids[0], len(chunk))
    finally:
        if bar:
            bar.stop()
    if args.show:
        from digitlab.inference.show import prediction_grid

        prediction_grid([p.source for p in shown], shown, args.show, args.max_pixels)
        print(f"wrote {args.show}", file=sys.stderr)
    return 1 if failed else 0
