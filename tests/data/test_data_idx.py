"""The strict IDX reader, on files the tests write: good gz and raw, and every malformed case."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest

from digitlab.data.idx import (
    check_pair,
    content_sha256,
    encode_idx,
    read_idx,
    read_images,
    read_labels,
)
from digitlab.errors import DataError


def idx_header(code: int, *dims: int) -> bytes:
    """Hand-made header (independent of encode_idx): two zero bytes, dtype code, ndim, big-endian sizes."""
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def images_bytes(n: int = 3) -> tuple[bytes, np.ndarray]:
    pixels = (np.arange(n * 28 * 28) % 256).astype(np.uint8).reshape(n, 28, 28)
    return idx_header(0x08, n, 28, 28) + pixels.tobytes(), pixels


def labels_bytes(values=(3, 1, 4)) -> bytes:
    return idx_header(0x08, len(values)) + bytes(values)


def expect_error(path, match: str) -> DataError:
    """Read `path` as the file type its name says; check the error is one line, names the file, matches."""
    reader = read_labels if "labels" in path.name else read_images
    with pytest.raises(DataError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message
    assert match.lower() in message.lower(), message
    assert "\n" not in message
    return info.value


# --- good files -------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_reads_images_and_labels(tmp_path, compress):
    raw_images, pixels = images_bytes()
    suffix = ".gz" if compress else ""
    images_path = tmp_path / f"images-idx3-ubyte{suffix}"
    labels_path = tmp_path / f"labels-idx1-ubyte{suffix}"
    images_path.write_bytes(gzip.compress(raw_images) if compress else raw_images)
    labels_path.write_bytes(gzip.compress(labels_bytes()) if compress else labels_bytes())

    images = read_images(images_path)
    labels = read_labels(labels_path)

    assert images.dtype == np.uint8 and images.shape == (3, 28, 28)
    np.testing.assert_array_equal(images, pixels)
    assert labels.dtype == np.uint8 and labels.tolist() == [3, 1, 4]
    check_pair(images, labels, num_classes=10)


def test_reads_bytes_and_multibyte_dtypes_in_native_order():
    for array in (np.array([[1, -2], [300, -400]], dtype=np.int16),
                  np.array([1.5, -2.25], dtype=np.float32),
                  np.array([[[7]]], dtype=np.float64),
                  np.array([-1, 2], dtype=np.int32),
                  np.array([-5, 5], dtype=np.int8)):
        decoded = read_idx(encode_idx(array))
        assert decoded.dtype == array.dtype and decoded.dtype.isnative
        np.testing.assert_array_equal(decoded, array)
    # A hand-made big-endian short file decodes to the right values.
    assert read_idx(idx_header(0x0B, 2) + struct.pack(">hh", 258, -3)).tolist() == [258, -3]


def test_encode_idx_matches_hand_made_header():
    raw, pixels = images_bytes()
    assert encode_idx(pixels) == raw


def test_content_sha256_same_for_gz_and_raw(tmp_path):
    raw, _ = images_bytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw, compresslevel=9))
    (tmp_path / "c").write_bytes(raw)
    expected = hashlib.sha256(raw).hexdigest()
    assert {content_sha256(tmp_path / name) for name in ("a.gz", "b.gz", "c")} == {expected}


# --- malformed files: each gets its own message naming the file -------------------------------

def test_wrong_magic(tmp_path):
    raw, _ = images_bytes()
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34" + raw[2:])
    expect_error(path, "wrong magic number")


def test_unknown_dtype_code(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(0x07, 1, 28, 28) + bytes(784))
    expect_error(path, "unknown IDX dtype code 0x07")


def test_wrong_dtype_code_for_images(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(0x0D, 1, 28, 28) + bytes(784 * 4)))
    expect_error(path, "dtype code 0x0d (float)")


def test_wrong_ndim(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(0x08, 2, 784) + bytes(2 * 784))
    expect_error(path, "declares 2 dimension(s); images need 3")


def test_labels_file_read_as_images_hints_at_a_swap(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(labels_bytes())
    expect_error(path, "is this a labels file?")


def test_declared_size_larger_than_file(tmp_path):
    raw, _ = images_bytes(3)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw[:-100])
    expect_error(path, "is truncated: its header declares 3x28x28 values")


def test_declared_size_smaller_than_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(labels_bytes() + b"\x00\x01")
    expect_error(path, "2 bytes more than its header declares")


def test_truncated_header(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(0x08, 3, 28, 28)[:9])
    expect_error(path, "truncated inside its header")


def test_truncated_gz(tmp_path):
    raw, _ = images_bytes(5)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw)[:200])
    expect_error(path, "truncated gzip file")


def test_corrupt_gz(tmp_path):
    compressed = bytearray(gzip.compress(labels_bytes()))
    compressed[-5] ^= 0xFF  # break the stored CRC/size trailer
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(compressed))
    expect_error(path, "corrupt gzip file")


def test_html_page_saved_as_gz(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\n<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head></html>\n")
    expect_error(path, "is an HTML page")


def test_gz_name_without_gzip_content(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(labels_bytes())
    expect_error(path, "is named .gz but is not gzip data")


def test_empty_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"")
    expect_error(path, "is empty (0 bytes)")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "train-labels-idx1-ubyte", "file not found")


def test_label_out_of_range(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(labels_bytes((1, 2, 12, 3)))
    expect_error(path, "label 12 at index 2 is outside 0-9")
    # The class count comes from the dataset: with 13 classes the same file is fine.
    assert read_labels(path, num_classes=13).tolist() == [1, 2, 12, 3]


def test_images_not_28x28(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(0x08, 2, 32, 32) + bytes(2 * 32 * 32))
    expect_error(path, "images are 32x32, expected 28x28")


def test_image_and_label_count_mismatch(tmp_path):
    raw, _ = images_bytes(3)
    images_path, labels_path = tmp_path / "t10k-images-idx3-ubyte", tmp_path / "t10k-labels-idx1-ubyte"
    images_path.write_bytes(raw)
    labels_path.write_bytes(labels_bytes((1, 2)))
    with pytest.raises(DataError) as info:
        check_pair(read_images(images_path), read_labels(labels_path),
                   images_name=str(images_path), labels_name=str(labels_path))
    message = str(info.value)
    assert str(images_path) in message and str(labels_path) in message
    assert "holds 3 images but" in message and "holds 2 labels" in message


def test_bytes_source_is_named_in_errors():
    with pytest.raises(DataError, match=r"^upload\.idx: wrong magic number"):
        read_idx(b"PK\x03\x04" + bytes(20), name="upload.idx")


# --- decompression bombs: refused after at most about the declared size -------------------------

def _gzip_bomb(header: bytes, gigabytes: float = 1.5) -> bytes:
    """gzip members that expand to `gigabytes` GB of zeros after `header`; the file is about 1.5 MB."""
    zeros = gzip.compress(bytes(10 << 20), compresslevel=9)  # 10 MiB of zeros, ~10 KB compressed
    return gzip.compress(header, compresslevel=9) + zeros * int(gigabytes * 1024 / 10)


@pytest.mark.parametrize("declared, needle", [
    (60000, "decompresses to more than the 47,040,016 bytes its header declares"),  # honest header, long body
    (4_000_000_000, "more than the 47,040,016 this file may hold"),  # a header declaring billions of images
])
def test_gzip_bomb_in_the_data_folder_is_refused_without_expanding(tmp_path, declared, needle):
    import tracemalloc

    from digitlab.data.dataset import load_dataset

    folder = tmp_path / "bombed"
    folder.mkdir()
    bomb = _gzip_bomb(idx_header(0x08, declared, 28, 28))
    assert len(bomb) < 2_000_000
    (folder / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(gzip.compress(labels_bytes()))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load_dataset("mnist", data_dir=folder, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and needle in message and "decompression bomb" in message
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB: the bomb was expanded"  # 1.5 GB if it were
