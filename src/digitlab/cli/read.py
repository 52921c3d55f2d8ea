"""`digitlab read`: the number written in an image (a line of handwritten digits, e.g. 2026)."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from digitlab.cli.predict import add_model_args

    p = subparsers.add_parser("read", help="read a handwritten number (a line of digits) in your own images")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER",
                   help="image files (PNG, JPEG, BMP, GIF, TIFF, WebP) or folders")
    add_model_args(p)
    p.add_argument("--recursive", action="store_true", help="look for images in sub-folders too")
    p.add_argument("--json", action="store_true", help="one JSON object per image (JSON Lines)")
    p.add_argument("--show", metavar="OUT.PNG", help="write the image with each digit's box and answer (one IMAGE)")
    p.set_defaults(handler=run)


def _text_line(source: str, reading) -> str:
    if not reading.digits:
        return f"{source}: no digits found"
    per_digit = " ".join(f"{d.digit}:{d.confidence:.2f}{'?' if d.unsure else ''}" for d in reading.digits)
    flag = "  UNSURE" if reading.unsure else ""
    return f"{source}: {reading.number}  (per digit: {per_digit}){flag}"


def run(args) -> int:
    import json
    import sys

    from digitlab.cli.predict import expand_inputs
    from digitlab.errors import ConfigError, ImageError
    from digitlab.inference.recognizer import Recognizer

    files, problems = expand_inputs(args.inputs, args.recursive)
    if args.show and len(files) + len(problems) != 1:
        raise ConfigError(f"--show draws one image: give one IMAGE, not {len(files) + len(problems)}")
    rec = Recognizer.load(args.model, runtime=args.runtime, min_confidence=args.min_confidence,
                          max_pixels=args.max_pixels)
    failed = 0
    for source, message in problems:
        failed += 1
        print(f"digitlab read: {source}: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"source": source, "number": None, "error": message}))
    for source in files:
        try:
            reading = rec.read(source)
        except ImageError as exc:
            failed += 1
            print(f"digitlab read: {source}: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"source": source, "number": None, "error": str(exc)}))
            continue
        print(json.dumps(reading.to_dict()) if args.json else _text_line(source, reading))
        if args.show:
            from digitlab.inference.decode import load_image
            from digitlab.inference.preprocess import apply_exif_orientation
            from digitlab.inference.show import reading_overlay

            image, _ = load_image(source, max_pixels=args.max_pixels, max_side=None)  # boxes are in input pixels
            reading_overlay(apply_exif_orientation(image), reading, args.show)
            print(f"wrote {args.show}", file=sys.stderr)
    return 1 if failed else 0
