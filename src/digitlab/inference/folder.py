"""A folder of a user's labelled images (the ImageFolder layout) and its score with a Recognizer.

    DIR/0/*.png ... DIR/9/*.jpg     one digit per image, scored with `predict`
    DIR/2026/*.png                  a folder named by a longer number: the number, scored with `read`

The source of an image is its file-name prefix before the first "_" (`mhw32c_3.jpg` -> `mhw32c`): one
writer, one camera or one drawing tool, so that accuracy per source shows who is read badly. A file that
cannot be decoded, and an image where no digit is found, count as wrong, with the reason.

    listing = list_image_folder("my_digits")
    score = score_folder(Recognizer.load(), listing)
    score["accuracy"], score["per_class"]["7"], score["confusions"], score["wrong"]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from digitlab.errors import ConfigError, ImageError
from digitlab.inference.decode import IMAGE_SUFFIXES

NO_PREFIX = "(no prefix)"  # the source of a file whose name has no "_"
NO_ANSWER = "none"  # the "predicted" label of an unreadable file or an image without a digit


@dataclass(frozen=True)
class LabelledImage:
    """One image of the folder: its path, its label ("7", or "2026" for a number) and its source."""

    path: str
    label: str
    source: str

    @property
    def is_number(self) -> bool:
        return len(self.label) > 1


@dataclass(frozen=True)
class FolderListing:
    """The labelled images of DIR, sorted by label then path, and what was left out (path, why)."""

    root: str
    images: tuple[LabelledImage, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def labels(self) -> list[str]:
        return sorted({im.label for im in self.images}, key=lambda s: (len(s), s))


def source_of(path: str | Path) -> str:
    """The file-name prefix before the first "_", e.g. "mhw32c" for mhw32c_3.jpg."""
    stem = Path(path).stem
    prefix, sep, _ = stem.partition("_")
    return prefix if sep and prefix else NO_PREFIX


def list_image_folder(root: str | Path) -> FolderListing:
    """The images of an ImageFolder: DIR/<label>/ holds the images of that label (sub-folders too).

    Labels are folder names made of digits only: 0-9 is a digit, a longer one a number. Other folders
    and files beside the label folders are left out and listed in `skipped`. Raises ConfigError (one
    line, naming the fix) when DIR is not a folder or holds no image under a label folder.
    """
    folder = Path(root)
    if not folder.exists():
        raise ConfigError(f"no such folder: {root} (give a folder laid out as DIR/<label>/*.png)")
    if not folder.is_dir():
        raise ConfigError(f"{root} is a file, not a folder: give a folder laid out as DIR/<label>/*.png")
    images: list[LabelledImage] = []
    skipped: list[tuple[str, str]] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot list {root}: {exc.strerror or exc} (check its permissions)") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            skipped.append((str(entry), "not in a label folder (put it in DIR/<label>/)"))
            continue
        if not (entry.name.isascii() and entry.name.isdigit()):
            skipped.append((str(entry), "not a label folder: label folders are named by digits (0-9, or a number)"))
            continue
        files = _images_under(entry)
        if not files:
            skipped.append((str(entry), f"the label folder holds no images ({', '.join(IMAGE_SUFFIXES)})"))
        images.extend(LabelledImage(path, entry.name, source_of(path)) for path in files)
    if not images:
        raise ConfigError(f"no labelled images in {root}: expected DIR/<label>/*.png, with label folders "
                          "named 0-9 (or by a number such as 2026)")
    images.sort(key=lambda im: ((len(im.label), im.label), im.path))
    return FolderListing(str(root), tuple(images), tuple(skipped))


def _images_under(folder: Path) -> list[str]:
    """The image files (by suffix) in `folder` and its sub-folders, sorted; hidden ones left out."""
    return sorted(str(p) for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


@dataclass(frozen=True)
class Answer:
    """What the recognizer answered for one labelled image. predicted is NO_ANSWER when the file could
    not be decoded (failure "unreadable") or no digit was found ("no_digit"); `reason` says why."""

    image: LabelledImage
    predicted: str
    confidence: float
    failure: str | None = None
    reason: str | None = None

    @property
    def right(self) -> bool:
        return self.predicted == self.image.label


def answer_folder(rec, listing: FolderListing, batch_size: int = 256) -> list[Answer]:
    """One Answer per image: single digits through `rec.predict` (in batches), numbers through `rec.read`."""
    digits = [im for im in listing.images if not im.is_number]
    answers: dict[str, Answer] = {}
    for start in range(0, len(digits), batch_size):
        chunk = digits[start : start + batch_size]
        for im, p in zip(chunk, rec.predict([im.path for im in chunk])):
            if p.error:
                answers[im.path] = Answer(im, NO_ANSWER, 0.0, "unreadable", p.error)
            elif p.digit is None:
                answers[im.path] = Answer(im, NO_ANSWER, 0.0, "no_digit",
                                          "no digit found" + (f" ({p.note})" if p.note else ""))
            else:
                answers[im.path] = Answer(im, rec.classes[p.digit], p.confidence)
    for im in listing.images:
        if im.is_number:
            answers[im.path] = _read_number(rec, im)
    return [answers[im.path] for im in listing.images]


def _read_number(rec, im: LabelledImage) -> Answer:
    try:
        reading = rec.read(im.path)
    except ImageError as exc:
        return Answer(im, NO_ANSWER, 0.0, "unreadable", str(exc))
    if not reading.number:
        return Answer(im, NO_ANSWER, 0.0, "no_digit", "no digits found")
    return Answer(im, reading.number, reading.confidence)


def _tally(answers: list[Answer], key) -> dict[str, dict]:
    right, total = Counter(), Counter()
    for a in answers:
        total[key(a)] += 1
        right[key(a)] += int(a.right)
    return {k: {"n": total[k], "right": right[k], "accuracy": right[k] / total[k]} for k in total}


def summarise(answers: list[Answer]) -> dict:
    """Accuracy overall, per class and per source; the confusions (true -> predicted, most frequent
    first) and every wrong file with its answer or its reason. Plain JSON-ready types."""
    n = len(answers)
    right = sum(a.right for a in answers)
    labels = sorted({a.image.label for a in answers}, key=lambda s: (len(s), s))
    per_class = _tally(answers, lambda a: a.image.label)
    confusions = Counter((a.image.label, a.predicted) for a in answers if not a.right)
    wrong = [{"file": a.image.path, "true": a.image.label,
              "predicted": None if a.predicted == NO_ANSWER else a.predicted,
              "confidence": round(a.confidence, 6), "source": a.image.source, "reason": a.reason}
             for a in answers if not a.right]
    return {
        "n": n,
        "right": right,
        "accuracy": right / n if n else 0.0,
        "per_class": {label: per_class[label] for label in labels},
        "per_source": dict(sorted(_tally(answers, lambda a: a.image.source).items())),
        "confusions": [{"true": t, "predicted": None if p == NO_ANSWER else p, "count": c}
                       for (t, p), c in sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))],
        "wrong": wrong,
        "unreadable": sum(a.failure == "unreadable" for a in answers),
        "no_digit": sum(a.failure == "no_digit" for a in answers),
    }


def score_folder(rec, listing: FolderListing, batch_size: int = 256) -> dict:
    """summarise(answer_folder(...)) plus the folder, what was skipped and the model's name."""
    out = summarise(answer_folder(rec, listing, batch_size))
    out["folder"] = listing.root
    out["skipped"] = [{"path": path, "reason": why} for path, why in listing.skipped]
    out["model"] = rec.info.get("name")
    return out
