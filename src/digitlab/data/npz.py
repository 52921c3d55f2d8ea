"""Keras's single-file layout: mnist.npz holding x_train, y_train, x_test, y_test.

Each member is read by hand (numpy's .npy header, then exactly the bytes it declares): object arrays
(pickles) are refused, so a crafted file cannot run code, and sizes are checked before anything is
decompressed. The content is checked as strictly as the IDX files (dtypes, shapes, counts, labels).
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from digitlab.data.idx import DEFAULT_MAX_BYTES, check_labels, check_pair, looks_like_html
from digitlab.errors import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_HEADER = 1 << 16  # an .npy header is a short dict; numpy itself refuses longer ones by default


def read_npz(path: str | os.PathLike, num_classes: int = 10,
             image_shape: tuple[int, int] = (28, 28), max_items: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Read a Keras-layout .npz.

    Returns {"x_train": uint8 (N, H, W), "y_train": int64 (N,), "x_test": uint8 (M, H, W),
    "y_test": int64 (M,)}. Labels stored as any integer type are accepted and widened to int64.
    max_items: the most (train, test) images the dataset declares; each member is refused, before it is
    decompressed, when it declares more bytes than that many items can take (a zip bomb costs nothing).
    """
    path = Path(path)
    name = str(path)
    _check_zip_magic(path)
    limits = _member_limits(max_items, image_shape)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {n[:-4] if n.endswith(".npy") else n: n for n in archive.namelist()}
            missing = [key for key in NPZ_KEYS if key not in members]
            if missing:
                raise DataError(f"{name}: lacks {', '.join(missing)} (has {', '.join(members) or 'nothing'}); "
                                f"a Keras-layout .npz holds {', '.join(NPZ_KEYS)}")
            arrays = {key: _read_member(archive, members[key], name, key, limits[key]) for key in NPZ_KEYS}
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, ValueError, NotImplementedError,
            RuntimeError, struct.error, OverflowError, KeyError) as exc:
        raise DataError(f"{name}: is not a valid .npz (zip) archive ({exc}); delete it and download it again") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot be read ({exc.strerror or exc})") from None

    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8:
            raise DataError(f"{name}: x_{split} has dtype {x.dtype}, expected uint8 pixels 0-255")
        if x.ndim != 3 or tuple(x.shape[1:]) != tuple(image_shape):
            raise DataError(f"{name}: x_{split} has shape {x.shape}, expected (N, {image_shape[0]}, {image_shape[1]})")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name}: y_{split} has dtype {y.dtype}, expected integer labels")
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        check_pair(x, y, images_name=f"{name} x_{split}", labels_name=f"{name} y_{split}")
        check_labels(y, num_classes, f"{name} y_{split}")
        arrays[f"y_{split}"] = y.astype(np.int64)
    return arrays


def _check_zip_magic(path: Path) -> None:
    """An .npz is a zip archive; say so plainly instead of letting np.load guess 'pickle'."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return
    if not head:
        problem = "is empty (0 bytes)"
    elif looks_like_html(head):
        problem = "is an HTML page (a failed download?)"
    else:
        problem = f"is not a .npz (zip) archive (starts with {head[:4].hex()})"
    raise DataError(f"{path}: {problem}; delete it and download it again")


def _member_limits(max_items, image_shape) -> dict[str, int]:
    """Most bytes per member: up to 8-byte values (so a wrong dtype is reported as such) and a header."""
    if max_items is None:
        return dict.fromkeys(NPZ_KEYS, DEFAULT_MAX_BYTES)
    pixels = int(np.prod(image_shape))
    train, test = max_items
    return {"x_train": 8 * train * pixels + _HEADER, "y_train": 8 * train + _HEADER,
            "x_test": 8 * test * pixels + _HEADER, "y_test": 8 * test + _HEADER}


def _read_member(archive: zipfile.ZipFile, member: str, name: str, key: str, limit: int) -> np.ndarray:
    """One .npy member, its sizes checked before anything is decompressed or allocated."""
    info = archive.getinfo(member)
    if info.file_size > limit:
        raise DataError(f"{name}: {key} declares {info.file_size:,} bytes uncompressed, more than the {limit:,} "
                        f"this dataset can hold: the file is corrupt or a zip bomb; delete it and download it again")
    with archive.open(info) as fh:
        version = npy.read_magic(fh)
        readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = readers[version](fh, max_header_size=_HEADER)
        if dtype.hasobject:
            raise DataError(f"{name}: holds pickled Python objects, which digitlab never loads "
                            f"(allow_pickle=False); use a plain Keras-layout .npz of uint8/int arrays")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = count * dtype.itemsize
        if nbytes > limit:
            raise DataError(f"{name}: {key} declares shape {shape} ({nbytes:,} bytes), more than this dataset can "
                            f"hold: the file is corrupt; delete it and download it again")
        data = fh.read(nbytes + 1)  # one byte more reaches the end, where zipfile checks the CRC
    if len(data) != nbytes:
        raise DataError(f"{name}: {key} holds {len(data):,} bytes of values but its header declares {nbytes:,}: "
                        f"the file is corrupt; delete it and download it again")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.copy()  # writable, as np.load gives
