"""A strict reader (and a small writer) for the IDX format of MNIST-style datasets.

IDX layout: two zero bytes, a dtype code, the number of dimensions, then one big-endian uint32 size
per dimension, then the values in C order. MNIST images carry magic 2051 (0x00000803: unsigned byte,
3 dimensions) and labels 2049 (0x00000801: unsigned byte, 1 dimension).

Files may be gzip-compressed or raw; gzip is recognised by its magic bytes. Every problem raises
DataError whose message starts with the file's name and says what is wrong and what to do.
Parsing is one `np.frombuffer` over the decompressed bytes: no Python loops over images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from digitlab.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> (numpy dtype, description). Multi-byte values are big-endian.
DTYPE_CODES: dict[int, tuple[str, str]] = {
    0x08: ("u1", "unsigned byte"),
    0x09: ("i1", "signed byte"),
    0x0B: (">i2", "short"),
    0x0C: (">i4", "int"),
    0x0D: (">f4", "float"),
    0x0E: (">f8", "double"),
}
_CODE_OF_DTYPE = {np.dtype(dt).newbyteorder("=").str: code for code, (dt, _) in DTYPE_CODES.items()}

_REDOWNLOAD = "delete it and download it again (digitlab data download)"


def _fail(name: str, problem: str) -> DataError:
    return DataError(f"{name}: {problem}")


def looks_like_html(head: bytes) -> bool:
    """True if the first bytes of a file are an HTML/XML page (what a failed download often saves)."""
    start = head.lstrip()[:512].lower()
    return start.startswith(b"<") and (b"<html" in start or b"<!doctype" in start or b"<head" in start
                                       or b"<body" in start or b"<?xml" in start)


# Decompression stops at the size a file may hold: what its header declares, and at most what the
# dataset declares (its item count and image shape, data/sources.py); DEFAULT_MAX_BYTES where no dataset
# says. A small slack past the header's size lets a slightly long file be reported with its exact excess.
DEFAULT_MAX_BYTES = 1 << 30
_SLACK = 1 << 16


def idx_size(shape: tuple[int, ...], itemsize: int = 1) -> int:
    """Bytes of an IDX file holding an array of `shape`: the header and the values."""
    return 4 + 4 * len(shape) + math.prod(shape) * itemsize  # Python ints: no overflow


def role_limit(role: str, count: int | None, image_shape: tuple[int, int] = (28, 28)) -> int | None:
    """The most bytes a dataset's `role` file may decompress to, from the count it declares (None: no cap)."""
    if count is None:
        return None
    return idx_size((count, *image_shape)) if role.endswith("images") else idx_size((count,))


def load_bytes(source: str | os.PathLike | bytes, name: str | None = None,
               max_bytes: int | None = None) -> tuple[bytes, str]:
    """The decompressed content of an IDX file (path, or the file's bytes) and the name to report.

    Raises DataError for a missing, unreadable, non-regular or empty file, an HTML page where data
    should be, a file named .gz that is not gzip data, a truncated or corrupt gzip stream, and content
    beyond `max_bytes` (default DEFAULT_MAX_BYTES) or beyond what its own header declares: decompression
    stops there, so a gzip bomb costs no more memory than the real file would.
    """
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        name = name or "<bytes>"
        named_gz = False  # bytes are judged by their content alone
    else:
        path = Path(source)
        name = name or str(path)
        named_gz = path.name.endswith(".gz")
        raw = _read_capped(path, name, limit)

    if not raw:
        raise _fail(name, f"is empty (0 bytes), probably a failed download: {_REDOWNLOAD}")
    if looks_like_html(raw[:1024]):
        raise _fail(name, f"is an HTML page, not IDX data (an error page saved by a failed download?): {_REDOWNLOAD}")
    if raw[:2] == GZIP_MAGIC:
        try:
            data = _gunzip_capped(raw, name, limit)
        except EOFError:
            raise _fail(name, f"is a truncated gzip file (the download was cut short): {_REDOWNLOAD}") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise _fail(name, f"is a corrupt gzip file ({exc}): {_REDOWNLOAD}") from None
        if not data:
            raise _fail(name, f"decompresses to nothing (0 bytes): {_REDOWNLOAD}")
        return data, name
    if named_gz:
        raise _fail(name, f"is named .gz but is not gzip data (starts with {raw[:4].hex()}): {_REDOWNLOAD}")
    if len(raw) > limit + _SLACK:
        raise _fail(name, f"is over {limit:,} bytes, more than this file may hold: the file is corrupt; {_REDOWNLOAD}")
    return raw, name


def _read_capped(path: Path, name: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise _fail(name, "is not a regular file: point at the IDX file itself")
            return fh.read(limit + _SLACK + 1)
    except FileNotFoundError:
        raise _fail(name, "file not found") from None
    except IsADirectoryError:
        raise _fail(name, "is a folder, not an IDX file") from None
    except OSError as exc:
        raise _fail(name, f"cannot be read ({exc.strerror or exc})") from None


def _gunzip_capped(raw: bytes, name: str, limit: int) -> bytes:
    """Decompress at most the size the IDX header declares (itself at most `limit`), plus a small slack."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
        head = fh.read(4)
        if len(head) < 4 or head[0] or head[1] or head[2] not in DTYPE_CODES or head[3] == 0:
            return head + fh.read(1024)  # parse_idx names the problem from the first bytes
        dims = fh.read(4 * head[3])
        if len(dims) < 4 * head[3]:
            return head + dims
        shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(head[3]))
        declared = idx_size(shape, np.dtype(DTYPE_CODES[head[2]][0]).itemsize)
        if declared > limit:
            raise _fail(name, f"its header declares {'x'.join(map(str, shape))} values ({declared:,} bytes), "
                              f"more than the {limit:,} this file may hold: the file is corrupt or a "
                              f"decompression bomb; {_REDOWNLOAD}")
        ceiling = declared + _SLACK
        body = fh.read(ceiling - len(head) - len(dims))
    data = head + dims + body
    if len(data) >= ceiling:
        raise _fail(name, f"decompresses to more than the {declared:,} bytes its header declares (stopped after "
                          f"{len(data):,}): the file is corrupt or a decompression bomb; {_REDOWNLOAD}")
    return data


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode decompressed IDX bytes into an array of the declared dtype (native byte order) and shape.

    uint8 data is returned as a zero-copy, read-only view of `data`.
    """
    if len(data) < 4:
        raise _fail(name, f"is {len(data)} bytes long, too short for an IDX header: {_REDOWNLOAD}")
    if data[0] != 0 or data[1] != 0:
        magic = int.from_bytes(data[:4], "big")
        raise _fail(name, f"wrong magic number {magic} (0x{magic:08x}): not an IDX file "
                          f"(IDX files start with two zero bytes; MNIST images use 2051, labels 2049)")
    code, ndim = data[2], data[3]
    if code not in DTYPE_CODES:
        raise _fail(name, f"unknown IDX dtype code 0x{code:02x} (known: "
                          f"{', '.join(f'0x{c:02x}' for c in DTYPE_CODES)}): the file is corrupt")
    if ndim == 0:
        raise _fail(name, "declares 0 dimensions: the file is corrupt")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _fail(name, f"is truncated inside its header ({len(data)} bytes, header needs {header_len}): "
                          f"{_REDOWNLOAD}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(DTYPE_CODES[code][0])
    count = math.prod(shape)  # Python ints: a lying header cannot overflow it
    expected = header_len + count * dtype.itemsize
    dims = "x".join(map(str, shape))
    if len(data) < expected:
        raise _fail(name, f"is truncated: its header declares {dims} values ({expected:,} bytes) but it holds "
                          f"{len(data):,} bytes: {_REDOWNLOAD}")
    if len(data) > expected:
        raise _fail(name, f"holds {len(data) - expected:,} bytes more than its header declares ({dims} values, "
                          f"{expected:,} bytes): the file is corrupt; {_REDOWNLOAD}")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_len).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _check_header(data: bytes, name: str, magic: int, ndim: int, what: str) -> None:
    """Check magic, dtype code and dimension count, with a message for each way they can differ."""
    if len(data) >= 4 and data[0] == 0 and data[1] == 0 and data[2] in DTYPE_CODES:
        found = int.from_bytes(data[:4], "big")
        if data[2] != 0x08:
            raise _fail(name, f"magic number {found} (0x{found:08x}) declares dtype code 0x{data[2]:02x} "
                              f"({DTYPE_CODES[data[2]][1]}); {what} must be unsigned bytes (0x08, magic {magic})")
        if data[3] != ndim:
            swapped = " (is this a labels file?)" if found == LABELS_MAGIC else (
                " (is this an images file?)" if found == IMAGES_MAGIC else "")
            raise _fail(name, f"magic number {found} (0x{found:08x}) declares {data[3]} dimension(s); "
                              f"{what} need {ndim} (magic {magic}){swapped}")


def read_idx(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """Read any IDX file (gzip or raw, path or bytes) into an array of its declared dtype and shape."""
    data, name = load_bytes(source, name)
    return parse_idx(data, name)


def read_images(source: str | os.PathLike | bytes, *, name: str | None = None,
                image_shape: tuple[int, int] = (28, 28), max_items: int | None = None) -> np.ndarray:
    """Images as uint8 (N, H, W), 0 = background, 255 = ink; (H, W) must equal `image_shape`.

    max_items: the most images the file may hold (the dataset's declared count); decompression stops there."""
    data, name = load_bytes(source, name, role_limit("images", max_items, image_shape))
    _check_header(data, name, IMAGES_MAGIC, 3, "images")
    images = parse_idx(data, name)
    if tuple(images.shape[1:]) != tuple(image_shape):
        raise _fail(name, f"images are {images.shape[1]}x{images.shape[2]}, expected "
                          f"{image_shape[0]}x{image_shape[1]}: this is not an MNIST-style images file")
    return images


def read_labels(source: str | os.PathLike | bytes, num_classes: int = 10, *, name: str | None = None,
                max_items: int | None = None) -> np.ndarray:
    """Labels as uint8 (N,), every value in 0 .. num_classes-1 (at most `max_items` of them)."""
    data, name = load_bytes(source, name, role_limit("labels", max_items))
    _check_header(data, name, LABELS_MAGIC, 1, "labels")
    labels = parse_idx(data, name)
    check_labels(labels, num_classes, name)
    return labels


def check_labels(labels: np.ndarray, num_classes: int, name: str) -> None:
    """Raise DataError naming the first label outside 0 .. num_classes-1."""
    if labels.size == 0:
        return
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        first = int(bad[0])
        raise _fail(name, f"label {int(labels[first])} at index {first} is outside 0-{num_classes - 1} "
                          f"({bad.size} bad label(s)); the file is corrupt or belongs to another dataset")


def check_pair(images: np.ndarray, labels: np.ndarray, *, images_name: str = "images",
               labels_name: str = "labels", num_classes: int | None = None) -> None:
    """Check that images (N, H, W) and labels (N,) belong together (and labels are in range)."""
    if images.ndim != 3:
        raise DataError(f"{images_name}: images must be (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_name}: labels must be (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_name} holds {len(images):,} images but {labels_name} holds "
                        f"{len(labels):,} labels: the files do not belong together")
    if num_classes is not None:
        check_labels(labels, num_classes, labels_name)


def encode_idx(array: np.ndarray) -> bytes:
    """The raw IDX bytes of `array` (any dtype IDX supports); the inverse of `parse_idx`."""
    array = np.asarray(array)
    code = _CODE_OF_DTYPE.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    body = np.ascontiguousarray(array, dtype=np.dtype(DTYPE_CODES[code][0])).tobytes()
    return header + body


def content_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20, max_bytes: int | None = None) -> str:
    """SHA-256 of a file's DECOMPRESSED content (gzip is recognised by its magic bytes).

    The same value holds for the official .gz, a recompressed .gz and the raw file. Streams, so
    memory stays flat, and stops past `max_bytes` (default DEFAULT_MAX_BYTES) of content. Raises
    DataError for a missing file, a broken gzip stream or content over the limit.
    """
    path = Path(path)
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    digest = hashlib.sha256()
    total = 0
    try:
        with open(path, "rb") as fh:
            compressed = fh.read(2) == GZIP_MAGIC
        opener = gzip.open if compressed else open
        with opener(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                total += len(chunk)
                if total > limit:
                    raise _fail(str(path), f"holds more than the {limit:,} bytes this file may hold: the file is "
                                           f"corrupt or a decompression bomb; {_REDOWNLOAD}")
                digest.update(chunk)
    except FileNotFoundError:
        raise _fail(str(path), "file not found") from None
    except EOFError:
        raise _fail(str(path), f"is a truncated gzip file: {_REDOWNLOAD}") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise _fail(str(path), f"is a corrupt gzip file ({exc}): {_REDOWNLOAD}") from None
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})") from None
    return digest.hexdigest()
