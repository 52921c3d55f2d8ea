"""Keras's mnist.npz layout: reading, strict checks, and a folder holding only mnist.npz as data dir."""

from __future__ import annotations

import io

import numpy as np
import pytest
from datalayer_helpers import tiny_arrays

from digitlab.data.dataset import load_dataset, verify_folder
from digitlab.data.npz import read_npz
from digitlab.data.sources import DATASETS
from digitlab.errors import DataError


def keras_arrays() -> dict[str, np.ndarray]:
    arrays = tiny_arrays(n_train=10, n_test=5)
    # Keras stores the labels as uint8, exactly like this.
    return {"x_train": arrays["train_images"], "y_train": arrays["train_labels"],
            "x_test": arrays["test_images"], "y_test": arrays["test_labels"]}


def test_reads_keras_layout(tmp_path):
    arrays = keras_arrays()
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, **arrays)

    out = read_npz(path)

    assert set(out) == {"x_train", "y_train", "x_test", "y_test"}
    assert out["x_train"].dtype == np.uint8 and out["x_train"].shape == (10, 28, 28)
    assert out["y_train"].dtype == np.int64 and out["y_test"].dtype == np.int64
    for key in arrays:
        np.testing.assert_array_equal(out[key], arrays[key])


def test_folder_with_only_mnist_npz_is_a_data_dir(tmp_path):
    arrays = keras_arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)

    data = load_dataset("mnist", data_dir=tmp_path, download=False)

    assert data.source == str(tmp_path.resolve())
    assert data.x_test.shape == (5, 28, 28) and data.y_test.dtype == np.int64
    np.testing.assert_array_equal(data.x_train, arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])


def test_verify_checks_an_npz_folder_against_the_official_checksum(tmp_path):
    np.savez(tmp_path / "mnist.npz", **keras_arrays())
    [result] = verify_folder(tmp_path, DATASETS["mnist"])
    assert result["role"] == "npz" and not result["ok"]
    assert "differs from the official 731c5ac60275" in result["detail"]


@pytest.mark.parametrize("change, match", [
    (lambda a: a.pop("y_test"), "lacks y_test"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "x_train has dtype float32, expected uint8"),
    (lambda a: a.update(x_test=a["x_test"].reshape(5, 784)), "x_test has shape (5, 784)"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "holds 10 images but"),
    (lambda a: a.update(y_test=np.array([0, 1, 2, 3, 11], dtype=np.uint8)), "label 11 at index 4"),
    (lambda a: a.update(y_train=a["y_train"].astype(np.float64)), "expected integer labels"),
])
def test_rejects_bad_content(tmp_path, change, match):
    arrays = keras_arrays()
    change(arrays)
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        read_npz(path)
    assert str(path) in str(info.value) and match in str(info.value)


def test_refuses_pickled_object_arrays(tmp_path):
    arrays = keras_arrays()
    arrays["y_train"] = np.array([object()] * 10, dtype=object)
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="holds pickled Python objects"):
        read_npz(path)


@pytest.mark.parametrize("content, match", [
    (b"", "is empty (0 bytes)"),
    (b"<html>not found</html>", "is an HTML page"),
    (b"\x93NUMPY\x01\x00", "is not a .npz (zip) archive"),
    (b"PK\x03\x04truncated", "is not a valid .npz (zip) archive"),
])
def test_not_an_npz(tmp_path, content, match):
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_npz(path)
    assert str(info.value).startswith(f"{path}: ") and match in str(info.value)


def test_npz_zip_bomb_is_refused_before_decompression(tmp_path):
    """A member of 400 MB of zeros (0.4 MB on disk) where mnist's x_train can take at most 376 MB."""
    import tracemalloc
    import zipfile

    path = tmp_path / "mnist.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (510_000, 28, 28)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x_train.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            for _ in range(400):
                member.write(bytes(1 << 20))
        for key in ("y_train", "x_test", "y_test"):
            archive.writestr(f"{key}.npy", b"")
    assert path.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load_dataset("mnist", data_dir=tmp_path, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "x_train declares" in str(info.value) and "zip bomb" in str(info.value)
    assert peak < 50e6
