"""What the article prints about the data: shapes, sizes, labels, per-class counts, pixel statistics.

`describe(dataset)` returns plain JSON-ready data; `format_description(desc)` renders it as text.
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK_IMAGES = 4096  # bounded memory: bincount widens each chunk to int64 (4096*784*8 = 26 MB)


def pixel_stats(images: np.ndarray) -> dict:
    """Exact min, max, mean and std (population) of uint8 pixels, from a 256-bin histogram.

    Never widens the whole array to float: 60000 images would otherwise need 376 MB of temporaries.
    """
    if images.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None}
    flat = images.reshape(len(images), -1)
    hist = np.zeros(256, dtype=np.int64)
    for start in range(0, len(flat), _CHUNK_IMAGES):
        hist += np.bincount(flat[start:start + _CHUNK_IMAGES].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64)
    total = hist.sum()
    mean = float((hist * values).sum() / total)
    var = float((hist * (values - mean) ** 2).sum() / total)
    present = np.flatnonzero(hist)
    return {"min": int(present[0]), "max": int(present[-1]), "mean": mean, "std": math.sqrt(var)}


def _split(images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    counts = np.bincount(labels, minlength=num_classes) if labels.size else np.zeros(num_classes, np.int64)
    return {
        "images_shape": list(images.shape),
        "images_dtype": str(images.dtype),
        "images_nbytes": int(images.nbytes),
        "labels_shape": list(labels.shape),
        "labels_dtype": str(labels.dtype),
        "count": int(len(labels)),
        "first_labels": labels[:3].tolist(),
        "last_labels": labels[-3:].tolist() if len(labels) > 3 else [],
        "labels_present": np.unique(labels).tolist(),
        "class_counts": counts.tolist(),
        "pixels": pixel_stats(images),
    }


def describe(dataset) -> dict:
    """Statistics of a `Dataset` as a JSON-ready dict: name, source, classes, and for "train" and
    "test": shapes, dtypes, byte size, count, first/last labels, per-class counts, pixel min/max/mean/std
    (0-255 scale)."""
    num_classes = len(dataset.classes)
    return {
        "name": dataset.name,
        "source": dataset.source,
        "classes": list(dataset.classes),
        "num_classes": num_classes,
        "train": _split(dataset.x_train, dataset.y_train, num_classes),
        "test": _split(dataset.x_test, dataset.y_test, num_classes),
    }


def _labels_repr(split: dict) -> str:
    first = " ".join(map(str, split["first_labels"]))
    if not split["last_labels"]:
        return f"[{first}]"
    return f"[{first} ... {' '.join(map(str, split['last_labels']))}]"


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_description(desc: dict) -> str:
    """Render `describe()`'s dict as the article shows it (shapes, len, labels), then the tables."""
    lines = [f"{desc['name']}: {desc['num_classes']} classes, from {desc['source']}", ""]
    for split in ("train", "test"):
        s = desc[split]
        shape = "(" + ", ".join(map(str, s["images_shape"])) + ")"
        lines.append(f"{split + '_images.shape':<19} {shape}  {s['images_dtype']}, {s['images_nbytes']:,} bytes")
        lines.append(f"{'len(' + split + '_labels)':<19} {s['count']}")
        lines.append(f"{split + '_labels':<19} {_labels_repr(s)}  {s['labels_dtype']}, "
                     f"values {_ranges(s['labels_present'])}")
    lines += ["", "per-class counts"]
    name_width = max(len("class"), *(len(f"{i} {c}") for i, c in enumerate(desc["classes"])))
    lines.append(f"{'class':<{name_width}}  {'train':>7}  {'test':>7}")
    train, test = desc["train"]["class_counts"], desc["test"]["class_counts"]
    for i, label in enumerate(desc["classes"]):
        tag = str(i) if label == str(i) else f"{i} {label}"
        lines.append(f"{tag:<{name_width}}  {train[i]:>7}  {test[i]:>7}")
    lines.append(f"{'total':<{name_width}}  {sum(train):>7}  {sum(test):>7}")
    lines += ["", "pixels   min  max     mean      std   mean/255  std/255"]
    for split in ("train", "test"):
        p = desc[split]["pixels"]
        scaled_mean = None if p["mean"] is None else p["mean"] / 255
        scaled_std = None if p["std"] is None else p["std"] / 255
        lines.append(f"{split:<6} {_num(p['min'], '>5')} {_num(p['max'], '>4')} {_num(p['mean'], '>8.3f')} "
                     f"{_num(p['std'], '>8.3f')} {_num(scaled_mean, '>10.4f')} {_num(scaled_std, '>8.4f')}")
    return "\n".join(lines)


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 3, 5] -> '0-3, 5'."""
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)
