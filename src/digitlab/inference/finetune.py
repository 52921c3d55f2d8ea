"""Teach a trained model your handwriting: fine-tune it on a folder of your labelled digits.

    DIR/0/*.png ... DIR/9/*.png  (the ImageFolder layout of digitlab.inference.folder)

Each image goes through the preprocessing `predict` uses, so the model learns the 28x28 images it will
be shown. Part of DIR is held out (stratified by label, seeded) to measure the gain; the rest is mixed
with MNIST training images, so that a few dozen of your digits teach the model your style without it
forgetting everyone else's. Accuracy before and after is measured on the held-out part and on the
MNIST test set.

    user = read_user_digits(rec, "my_digits")
    result = finetune(model, user, mnist, TrainConfig(epochs=4, ...), FinetuneSettings())
    result.report["holdout"]["after"], result.report["mnist_test"]["after"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from digitlab.errors import ConfigError, ImageError
from digitlab.evaluate.metrics import evaluate, predict_proba
from digitlab.inference.finetune_settings import FinetuneSettings
from digitlab.inference.folder import list_image_folder
from digitlab.train.loop import fit


@dataclass(frozen=True)
class UserDigits:
    """Your labelled digits as the model sees them.

    x: uint8 (N, 28, 28), 0 = background, 255 = ink (MNIST's polarity), made by `predict`'s preprocessing.
    y: int64 (N,), indices into the model's classes. files: the image of each row.
    skipped: (path, why) for each image left out (unreadable, no digit found, a number folder).
    """

    x: np.ndarray
    y: np.ndarray
    files: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def read_user_digits(rec, root) -> UserDigits:
    """The single-digit images of the ImageFolder `root`, prepared by `rec` (a Recognizer) as `predict`
    prepares them. Raises ConfigError when no image could be used."""

    listing = list_image_folder(root)
    index = {name: i for i, name in enumerate(rec.classes)}
    rows, labels, files, skipped = [], [], [], list(listing.skipped)
    for im in listing.images:
        if im.label not in index:
            why = ("a number folder: fine-tuning learns single digits" if im.is_number
                   else f"label {im.label} is not one of the model's classes")
            skipped.append((im.path, why))
            continue
        try:
            image28, note = rec.prepare(im.path)
        except ImageError as exc:
            skipped.append((im.path, str(exc)))
            continue
        if image28 is None:
            skipped.append((im.path, "no digit found" + (f" ({note})" if note else "")))
            continue
        rows.append(np.rint(np.clip(image28, 0, 1) * 255).astype(np.uint8))
        labels.append(index[im.label])
        files.append(im.path)
    if not rows:
        raise ConfigError(f"no usable digit images in {root}: every image was left out "
                          f"(e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else f"no digit images in {root}")
    return UserDigits(np.stack(rows), np.asarray(labels, np.int64), tuple(files), tuple(skipped))


def holdout_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices), stratified: round(fraction * n) of each label's n images are
    held out, at least one where fraction > 0 and the label has two or more, never all of them."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        k = 0 if fraction == 0 or len(rows) < 2 else min(len(rows) - 1, max(1, round(fraction * len(rows))))
        held.extend(rows[:k])
        train.extend(rows[k:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(held, np.int64))


def mix_with_mnist(x_user, y_user, x_mnist, y_mnist, settings: FinetuneSettings) -> tuple[np.ndarray, np.ndarray]:
    """The fine-tuning set: `mnist_images` MNIST images drawn at random (seeded) and your images repeated
    so that they make up about `user_share` of it (at least once each). uint8 (N, 28, 28), int64 (N,)."""
    rng = np.random.default_rng(settings.seed)
    n_mnist = min(settings.mnist_images, len(x_mnist))
    pick = rng.choice(len(x_mnist), size=n_mnist, replace=False) if n_mnist else np.zeros(0, np.int64)
    want = settings.user_share * n_mnist / (1 - settings.user_share) if settings.user_share < 1 else len(x_user)
    repeats = max(1, int(np.ceil(want / len(x_user))))
    x = np.concatenate([np.asarray(x_mnist)[pick], np.tile(x_user, (repeats, 1, 1))])
    y = np.concatenate([np.asarray(y_mnist)[pick], np.tile(y_user, repeats)]).astype(np.int64)
    return x, y


def _accuracy(model, x, y) -> float | None:

    if len(x) == 0:
        return None
    return float((predict_proba(model, x).argmax(1) == y).mean())


@dataclass
class FinetuneResult:
    model: object
    history: object
    report: dict  # before/after on the held-out part and MNIST test, the split and the mix
    test: dict  # digitlab.evaluate.metrics.evaluate on MNIST test after fine-tuning (loss, accuracy, ...)


def finetune(model, user: UserDigits, mnist, config, settings: FinetuneSettings | None = None,
             *, verbose: bool = True, callbacks=()) -> FinetuneResult:
    """Fine-tune `model` (in place) on `user` mixed with `mnist` (a Dataset), then measure.

    config: the TrainConfig of the fine-tuning fit (its seed drives the shuffling; settings.seed the
    split and the mix)."""

    settings = settings or FinetuneSettings()
    train_idx, held_idx = holdout_split(user.y, settings.holdout, settings.seed)
    x_held, y_held = user.x[held_idx], user.y[held_idx]
    before = {"holdout": _accuracy(model, x_held, y_held), "mnist_test": _accuracy(model, mnist.x_test, mnist.y_test)}
    x, y = mix_with_mnist(user.x[train_idx], user.y[train_idx], mnist.x_train, mnist.y_train, settings)
    history = fit(model, x, y, config, callbacks=callbacks, verbose=verbose)
    test = evaluate(model, mnist.x_test, mnist.y_test, classes=mnist.classes)
    n_mnist = min(settings.mnist_images, len(mnist.x_train))
    report = {
        "settings": asdict(settings),
        "images": len(user.y), "train_images": len(train_idx), "holdout_images": len(held_idx),
        "holdout_files": [user.files[i] for i in held_idx],
        "skipped": [{"path": p, "reason": why} for p, why in user.skipped],
        "mixed_set": {"images": len(y), "mnist_images": n_mnist, "user_copies": len(y) - n_mnist},
        "holdout": {"n": len(held_idx), "before": before["holdout"], "after": _accuracy(model, x_held, y_held)},
        "mnist_test": {"n": len(mnist.y_test), "before": before["mnist_test"], "after": float(test["accuracy"])},
    }
    return FinetuneResult(model, history, report, test)


def report_lines(report: dict) -> list[str]:
    """The before/after figures as text."""
    def pct(value):
        return "n/a" if value is None else f"{value:.4f}"

    s = report["settings"]
    lines = [f"Your images: {report['images']} used ({len(report['skipped'])} left out); "
             f"{report['train_images']} for training, {report['holdout_images']} held out "
             f"({s['holdout']:.0%} of each label, seed {s['seed']})",
             f"Mixed with {report['mixed_set']['mnist_images']:,} MNIST training images "
             f"({report['mixed_set']['user_copies']:,} copies of yours, {s['user_share']:.0%} of the set)"]
    h, m = report["holdout"], report["mnist_test"]
    if h["n"]:
        lines.append(f"Held-out images of yours ({h['n']}): {pct(h['before'])} before -> {pct(h['after'])} after")
    else:
        lines.append("Held-out images of yours: none (each label needs two images or more to hold one out)")
    lines.append(f"MNIST test ({m['n']:,}): {pct(m['before'])} before -> {pct(m['after'])} after")
    return lines
