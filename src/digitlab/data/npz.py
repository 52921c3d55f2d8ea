"""Keras's single-file layout: mnist.npz holding x_train, y_train, x_test, y_test.

Loaded with allow_pickle=False, so a crafted file cannot run code; its content is checked as
strictly as the IDX files (dtypes, shapes, counts, label range).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from digitlab.data.idx import check_labels, check_pair
from digitlab.errors import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(path: str | os.PathLike, num_classes: int = 10,
             image_shape: tuple[int, int] = (28, 28)) -> dict[str, np.ndarray]:
    """Read a Keras-layout .npz.

    Returns {"x_train": uint8 (N, H, W), "y_train": int64 (N,), "x_test": uint8 (M, H, W),
    "y_test": int64 (M,)}. Labels stored as any integer type are accepted and widened to int64.
    """
    path = Path(path)
    name = str(path)
    _check_zip_magic(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(f"{name}: lacks {', '.join(missing)} (has {', '.join(archive.files) or 'nothing'}); "
                                f"a Keras-layout .npz holds {', '.join(NPZ_KEYS)}")
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{name}: is not a valid .npz (zip) archive ({exc}); delete it and download it again") from None
    except ValueError:
        # Past the zip check, np.load's ValueError means an object array, i.e. a pickle.
        raise DataError(f"{name}: holds pickled Python objects, which digitlab never loads "
                        f"(allow_pickle=False); use a plain Keras-layout .npz of uint8/int arrays") from None
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
    from digitlab.data.idx import looks_like_html

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
