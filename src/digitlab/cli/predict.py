"""`digitlab predict`: the digit in each of your own images (files or folders of them).

Each image is preprocessed the way MNIST was made (see digitlab.inference.preprocess) before the
model sees it. A file that cannot be read gets a one-line error on stderr and the rest go on; the
exit code is 1 when any input failed.
"""

from __future__ import annotations

import argparse

from digitlab.inference.limits import DEFAULT_MAX_PIXELS

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
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"refuse images with more than N pixels, before decoding (default {DEFAULT_MAX_PIXELS:,})")


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
    """(image paths, [(input, error)]): folders become their image files, sorted.

    Nothing is skipped without a word: a folder that cannot be listed, and an entry with an image
    suffix that is not a readable regular file (a dangling link, a named pipe, a device, a folder
    named x.png), each get a problem line; other files (notes.txt) are simply not images.
    """
    import os
    from pathlib import Path

    from digitlab.inference.decode import IMAGE_SUFFIXES

    files: list[str] = []
    problems: list[tuple[str, str]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found, trouble = _list_folder(path, recursive, IMAGE_SUFFIXES)
            problems.extend(trouble)
            if not found and not trouble:
                problems.append((raw, f"the folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
                                      + ("" if recursive else "; use --recursive for sub-folders")))
            files.extend(found)
        elif path.is_symlink() and not path.exists():
            problems.append((raw, f"{raw} is a dangling symbolic link (to {os.readlink(path)}): fix or remove it"))
        elif path.exists():
            files.append(raw)  # decoding refuses, in one line, anything that is not a regular file
        else:
            problems.append((raw, f"no such file or folder: {raw} (check the path)"))
    return files, problems


def _list_folder(folder, recursive: bool, suffixes) -> tuple[list[str], list[tuple[str, str]]]:
    """(image files, problems) in `folder`; sub-folders too when `recursive` (links to folders are
    not followed, so a link loop cannot make the walk endless)."""
    import os
    import stat

    from digitlab.inference.decode import file_kind

    found: list[str] = []
    problems: list[tuple[str, str]] = []

    def cannot_list(exc: OSError) -> None:
        where = exc.filename or folder
        problems.append((str(where), f"cannot list the folder {where}: {exc.strerror or exc}"))

    walk = os.walk(folder, onerror=cannot_list) if recursive else _top_level(folder, cannot_list)
    for top, dirs, names in walk:
        entries = names if recursive else names + dirs
        for name in entries:
            if os.path.splitext(name)[1].lower() not in suffixes:
                continue
            full = os.path.join(top, name)
            try:
                mode = os.stat(full).st_mode
            except FileNotFoundError:
                problems.append((full, f"{full} is a dangling symbolic link: fix or remove it"))
                continue
            except OSError as exc:
                problems.append((full, f"cannot read {full}: {exc.strerror or exc}"))
                continue
            if stat.S_ISREG(mode):
                found.append(full)
            elif stat.S_ISDIR(mode):
                if not recursive:
                    problems.append((full, f"{full} is a folder, not an image file (--recursive looks inside)"))
            else:
                problems.append((full, f"{full} is {file_kind(mode)}, not an image file"))
    return sorted(found), problems


def _top_level(folder, onerror):
    """os.walk's (top, dirs, files) for `folder` alone."""
    import os

    try:
        with os.scandir(folder) as scan:
            entries = list(scan)
    except OSError as exc:
        onerror(exc)
        return
    dirs = [e.name for e in entries if _is_dir(e)]
    yield str(folder), dirs, [e.name for e in entries if e.name not in set(dirs)]


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


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


def looks_like_several_digits(image28, wide: float = 1.5) -> bool:
    """Is the ink in the 28x28 much wider than tall? A single digit rarely is (0.5% of MNIST's test
    digits at 1.5), a row of digits read as one is: then `digitlab read` is the command."""
    import numpy as np

    if image28 is None:
        return False
    ink = image28 > 0.25
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if len(rows) == 0:
        return False
    return (cols[-1] - cols[0] + 1) >= wide * (rows[-1] - rows[0] + 1)


def _text_line(p) -> str:
    if p.digit is None:
        if p.note and p.note.startswith("no digit found"):  # the note already says so, and why
            return f"{p.source}: {p.note}"
        return f"{p.source}: no digit found" + (f" ({p.note})" if p.note else "")
    top = ", ".join(f"{d} {q:.3f}" for d, q in p.top(3))
    flag = "  UNSURE" if p.unsure else ""
    note = f"  (note: {p.note})" if p.note else ""
    if looks_like_several_digits(p.image28):
        note += f"  (several digits? digitlab read {p.source} reads a number)"
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
