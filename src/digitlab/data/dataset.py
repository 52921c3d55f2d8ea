"""`load_dataset`: find a dataset's files, read them strictly, cache the arrays in-process.

    >>> data = load_dataset("mnist")
    >>> data.x_train.shape, data.x_train.dtype, data.y_train.dtype
    ((60000, 28, 28), dtype('uint8'), dtype('int64'))

Also `verify_folder`, the check behind `digitlab data verify`: each file's decompressed SHA-256
against the spec and its decoded content (shapes, counts, labels).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitlab.data.idx import check_pair, content_sha256, load_bytes, read_images, read_labels, role_limit
from digitlab.data.locate import find_idx_files, npz_path, resolve_data_dir
from digitlab.data.npz import read_npz
from digitlab.data.sources import ROLES, DatasetSpec, get_spec
from digitlab.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of 28x28 grey images.

    x_train: uint8 (N, 28, 28), 0 = background, 255 = ink (60000 images for MNIST).
    y_train: int64 (N,), values 0 .. num_classes-1.
    x_test:  uint8 (M, 28, 28) (10000 for MNIST).   y_test: int64 (M,).
    classes: class names, index = label.          source: the folder the files came from.

    The arrays are READ-ONLY: they are shared by every caller through the in-process cache.
    Use `np.array(data.x_train)` (or `.copy()`) for a copy you may change in place.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of "train" or "test"."""
        if which == "train":
            return self.x_train, self.y_train
        if which == "test":
            return self.x_test, self.y_test

        raise ConfigError(f"unknown split {which!r}: choose train or test")

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, x_test={self.x_test.shape}, "
                f"classes={len(self.classes)}, source={self.source!r})")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def read_folder(folder: str | os.PathLike, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """Read a folder holding the four IDX files (preferred) or the spec's .npz.

    Returns {"x_train", "y_train", "x_test", "y_test"}: uint8 images, int64 labels, all checked.
    """
    found, missing = find_idx_files(folder, spec)
    if missing:
        npz = npz_path(folder, spec)
        if npz is None:
            raise DataError(f"{folder} lacks {', '.join(missing)}: it must hold the four IDX files"
                            + (f" or {spec.npz.name}" if spec.npz else ""))

        counts = (spec.files["train_images"].count, spec.files["test_images"].count)
        return read_npz(npz, spec.num_classes, spec.image_shape, None if None in counts else counts)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images_path, labels_path = found[f"{split}_images"], found[f"{split}_labels"]
        # The declared counts cap decompression: a gzip bomb is refused, not expanded.
        images = read_images(images_path, image_shape=spec.image_shape,
                             max_items=spec.files[f"{split}_images"].count)
        labels = read_labels(labels_path, spec.num_classes, max_items=spec.files[f"{split}_labels"].count)
        check_pair(images, labels, images_name=str(images_path), labels_name=str(labels_path))
        arrays[f"x_{split}"] = images
        arrays[f"y_{split}"] = labels.astype(np.int64)
    return arrays


def _signature(folder: Path, spec: DatasetSpec) -> tuple:
    """(name, size, mtime) of the files that would be read: a replaced file misses the cache."""
    found, missing = find_idx_files(folder, spec)
    paths = list(found.values()) if not missing else [npz_path(folder, spec)]
    out = []
    for path in paths:
        if path is not None:
            stat = path.stat()
            out.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, folder: str, signature: tuple) -> Dataset:
    spec = get_spec(name)
    arrays = read_folder(folder, spec)
    return Dataset(
        name=spec.name,
        x_train=_read_only(arrays["x_train"]),
        y_train=_read_only(arrays["y_train"]),
        x_test=_read_only(arrays["x_test"]),
        y_test=_read_only(arrays["y_test"]),
        classes=spec.classes,
        source=folder,
    )


def load_dataset(name: str = "mnist", data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load a dataset by name ("mnist", "fashion-mnist").

    data_dir: the folder holding its files; None looks in $DIGITLAB_DATA_DIR/<name>, then the cache,
    then downloads (unless download=False). Arrays are cached per folder for the life of the process.
    Raises ConfigError (unknown name) or DataError/DownloadError (missing, corrupt, unreachable).
    """
    spec = get_spec(name)
    folder = resolve_data_dir(spec.name, data_dir, download=download)
    return _load_cached(spec.name, str(folder), _signature(folder, spec))


def verify_folder(folder: str | os.PathLike, spec: DatasetSpec) -> list[dict]:
    """Check every file of a dataset folder; one result dict per file, never raising for bad data.

    Each dict: file (path or expected name), role, ok (bool), detail (one line). IDX files are
    checked by decompressed SHA-256 against the spec and by decoding (shape, count, labels, pairing);
    a folder with only the .npz is checked by the npz's SHA-256 (when the spec has one) and content.
    """
    folder = Path(folder)
    found, missing = find_idx_files(folder, spec)
    npz = npz_path(folder, spec)
    if missing and npz is not None:
        return [_verify_npz(npz, spec)]
    results: list[dict] = []
    decoded: dict[str, np.ndarray] = {}
    for role in ROLES:
        file = spec.files[role]
        path = found.get(role)
        if path is None:
            results.append({"file": str(folder / file.name), "role": role, "ok": False,
                            "detail": "missing (neither .gz nor raw)"})
            continue
        try:
            limit = role_limit(role, file.count, spec.image_shape)
            content, _ = load_bytes(path, max_bytes=limit)  # decompress once: hash and decode the same bytes
            digest = hashlib.sha256(content).hexdigest()
            if role.endswith("images"):
                array = read_images(content, name=str(path), image_shape=spec.image_shape)
                what = f"{len(array):,} images {array.shape[1]}x{array.shape[2]}"
            else:
                array = read_labels(content, spec.num_classes, name=str(path))
                what = f"{len(array):,} labels in 0-{spec.num_classes - 1}"
        except DataError as exc:
            results.append({"file": str(path), "role": role, "ok": False, "detail": str(exc).replace(f"{path}: ", "")})
            continue
        decoded[role] = array
        problems = []
        if digest != file.sha256:
            problems.append(f"SHA-256 of the content {digest[:12]}... differs from the official {file.sha256[:12]}...")
        if file.count is not None and len(array) != file.count:
            problems.append(f"holds {len(array):,} items, expected {file.count:,}")
        detail = "; ".join(problems) if problems else f"sha256 {digest[:12]}... ok, {what}"
        results.append({"file": str(path), "role": role, "ok": not problems, "detail": detail})
    for split in ("train", "test"):
        images, labels = decoded.get(f"{split}_images"), decoded.get(f"{split}_labels")
        if images is not None and labels is not None:
            try:
                check_pair(images, labels, images_name=f"{split} images", labels_name=f"{split} labels")
            except DataError as exc:
                results.append({"file": f"{split} pair", "role": f"{split}_pair", "ok": False, "detail": str(exc)})
    return results


def _verify_npz(path: Path, spec: DatasetSpec) -> dict:
    try:
        counts = (spec.files["train_images"].count, spec.files["test_images"].count)
        arrays = read_npz(path, spec.num_classes, spec.image_shape, None if None in counts else counts)
        digest = content_sha256(path)
    except DataError as exc:
        return {"file": str(path), "role": "npz", "ok": False, "detail": str(exc).replace(f"{path}: ", "")}
    sizes = f"{len(arrays['x_train']):,} train + {len(arrays['x_test']):,} test images"
    if spec.npz is not None and spec.npz.sha256 and digest != spec.npz.sha256:
        return {"file": str(path), "role": "npz", "ok": False,
                "detail": f"SHA-256 {digest[:12]}... differs from the official {spec.npz.sha256[:12]}..."}
    return {"file": str(path), "role": "npz", "ok": True, "detail": f"sha256 {digest[:12]}... ok, {sizes}"}
