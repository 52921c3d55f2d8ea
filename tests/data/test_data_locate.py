"""Lookup order (explicit dir > $DIGITLAB_DATA_DIR > cache > download), load_dataset and its cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from datalayer_helpers import OFFICIAL_NAMES, spec_for, tiny_arrays, write_tiny_folder

from digitlab.data.dataset import load_dataset
from digitlab.data.locate import cache_dir, cache_root, resolve_data_dir
from digitlab.data.sources import DATASETS, get_spec
from digitlab.errors import ConfigError, DataError, DownloadError


@pytest.fixture
def four_places(tmp_path, monkeypatch, mirror_server, register_spec, isolated_data_env):
    """The same 'tiny' dataset in four places, each with different pixels so a load tells them apart:
    an explicit folder, $DIGITLAB_DATA_DIR/tiny, the cache, and a mirror for the download."""
    www, base, _ = mirror_server
    arrays = {place: tiny_arrays(seed=seed) for seed, place in enumerate(["explicit", "env", "cache", "mirror"])}
    explicit = tmp_path / "explicit"
    env_root = tmp_path / "env-root"
    cached = isolated_data_env / "tiny"
    for place, folder in (("explicit", explicit), ("env", env_root / "tiny"), ("cache", cached),
                          ("mirror", www / "tiny")):
        write_tiny_folder(folder, arrays[place])
    # Checksums of the mirror's copy: a download must produce exactly those files.
    register_spec(spec_for(arrays["mirror"], mirrors=(f"{base}/tiny/",)))
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(env_root))
    return {"explicit": explicit, "env": env_root / "tiny", "cache": cached, "arrays": arrays}


def loaded_from(data, arrays) -> str:
    matches = [place for place, a in arrays.items() if np.array_equal(data.x_train, a["train_images"])]
    assert len(matches) == 1
    return matches[0]


def remove_files(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def test_lookup_order(four_places):
    places, arrays = four_places, four_places["arrays"]

    assert resolve_data_dir("tiny", places["explicit"]) == places["explicit"].resolve()
    assert loaded_from(load_dataset("tiny", data_dir=places["explicit"]), arrays) == "explicit"

    assert resolve_data_dir("tiny") == places["env"]
    assert loaded_from(load_dataset("tiny"), arrays) == "env"

    remove_files(places["env"])  # env root without this dataset: fall through to the cache
    assert resolve_data_dir("tiny") == places["cache"]
    assert loaded_from(load_dataset("tiny"), arrays) == "cache"

    remove_files(places["cache"])  # nothing local: download into the cache from the spec's mirror
    assert resolve_data_dir("tiny") == places["cache"]
    assert loaded_from(load_dataset("tiny"), arrays) == "mirror"
    assert sorted(p.name for p in places["cache"].iterdir()) == sorted(f"{n}.gz" for n in OFFICIAL_NAMES.values())


def test_explicit_dir_without_files_is_an_error_not_a_fall_through(four_places, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("tiny", data_dir=empty)
    assert f"data dir {empty.resolve()} holds no tiny files" in str(info.value)
    assert "train-images-idx3-ubyte.gz" in str(info.value)

    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir("tiny", tmp_path / "no-such-folder")


def test_explicit_dir_with_some_files_names_the_missing_ones(tmp_path, register_spec):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays))
    folder = tmp_path / "partial"
    write_tiny_folder(folder, arrays)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\.gz"):
        resolve_data_dir("tiny", folder)


def test_explicit_root_instead_of_dataset_folder_gets_a_hint(tmp_path, register_spec):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays))
    write_tiny_folder(tmp_path / "root" / "tiny", arrays)
    with pytest.raises(DataError, match=r"holds them: use --data-dir .*root/tiny"):
        resolve_data_dir("tiny", tmp_path / "root")


def test_no_download_says_where_it_looked(tmp_path, monkeypatch, register_spec, isolated_data_env):
    register_spec(spec_for(tiny_arrays()))
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DataError) as info:
        load_dataset("tiny", download=False)
    message = str(info.value)
    assert str(tmp_path / "root" / "tiny") in message and str(isolated_data_env / "tiny") in message
    assert "downloads are off" in message and "--data-dir" in message and "digitlab data download" in message


def test_missing_env_root_is_an_error_not_a_download(tmp_path, monkeypatch, register_spec):
    register_spec(spec_for(tiny_arrays(), mirrors=("http://127.0.0.1:9/never/",)))
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "no-such-root"))
    with pytest.raises(DataError) as info:
        resolve_data_dir("tiny")
    assert not isinstance(info.value, DownloadError)
    assert f"DIGITLAB_DATA_DIR={tmp_path / 'no-such-root'}" in str(info.value)
    assert "does not exist" in str(info.value) and "ROOT/tiny" in str(info.value)


def test_env_root_pointing_at_the_dataset_folder_names_its_parent(tmp_path, monkeypatch, register_spec):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays, mirrors=("http://127.0.0.1:9/never/",)))
    write_tiny_folder(tmp_path / "data" / "tiny", arrays)
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "data" / "tiny"))
    with pytest.raises(DataError, match=f"set DIGITLAB_DATA_DIR={tmp_path / 'data'}$"):
        resolve_data_dir("tiny")
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "data"))  # the fix it names works
    assert resolve_data_dir("tiny") == tmp_path / "data" / "tiny"


def test_env_dataset_folder_with_some_files_names_the_missing_ones(tmp_path, monkeypatch, register_spec):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays))
    write_tiny_folder(tmp_path / "root" / "tiny", arrays)
    (tmp_path / "root" / "tiny" / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DataError, match=r"lacks train-labels-idx1-ubyte\.gz"):
        resolve_data_dir("tiny")


def test_failed_download_after_env_root_says_where_it_looked(tmp_path, monkeypatch, mirror_server,
                                                             register_spec, isolated_data_env):
    _, base, _ = mirror_server
    register_spec(spec_for(tiny_arrays(), mirrors=(f"{base}/absent/",)))
    (tmp_path / "root" / "other-dataset").mkdir(parents=True)
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DownloadError) as info:
        resolve_data_dir("tiny")
    message = str(info.value)
    assert str(tmp_path / "root" / "tiny") in message and str(isolated_data_env / "tiny") in message
    assert f"{base}/absent/" in message


def test_relative_env_root_is_resolved(tmp_path, monkeypatch, register_spec):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays))
    write_tiny_folder(tmp_path / "shared" / "data" / "tiny", arrays)
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    monkeypatch.setenv("DIGITLAB_DATA_DIR", "../shared/data")
    assert resolve_data_dir("tiny", download=False) == tmp_path / "shared" / "data" / "tiny"


def test_cache_location_honours_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir("MNIST") == tmp_path / "c" / "mnist"
    monkeypatch.delenv("DIGITLAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "digitlab"
    assert cache_dir("fashion_mnist") == tmp_path / "xdg" / "digitlab" / "fashion-mnist"


@pytest.mark.parametrize("naming", ["raw", "dotted"])
def test_raw_file_names_are_accepted(tmp_path, register_spec, naming):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays))
    folder = tmp_path / naming
    write_tiny_folder(folder, arrays, compress=False)
    if naming == "dotted":  # e.g. train-images.idx3-ubyte, as some archives name them
        for name in OFFICIAL_NAMES.values():
            (folder / name).rename(folder / name.replace("-idx", ".idx"))
    data = load_dataset("tiny", data_dir=folder)
    np.testing.assert_array_equal(data.x_test, arrays["test_images"])


def test_dataset_contract_and_in_process_cache(tmp_path, register_spec):
    arrays = tiny_arrays(n_train=20, n_test=10)
    register_spec(spec_for(arrays))
    folder = tmp_path / "d"
    write_tiny_folder(folder, arrays)

    data = load_dataset("tiny", data_dir=folder)

    assert data.name == "tiny" and data.source == str(folder.resolve()) and data.classes == tuple("0123456789")
    assert data.x_train.dtype == np.uint8 and data.x_train.shape == (20, 28, 28)
    assert data.y_train.dtype == np.int64 and data.y_train.shape == (20,)
    assert data.x_test.shape == (10, 28, 28) and data.y_test.dtype == np.int64
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])
    with pytest.raises(ValueError):  # shared through the cache, so read-only
        data.x_train[0, 0, 0] = 1
    assert load_dataset("tiny", data_dir=folder) is data  # second load: the cache

    # A replaced file is picked up (the cache key includes size and mtime).
    new = tiny_arrays(n_train=20, n_test=10, seed=42)
    write_tiny_folder(folder, new)
    os.utime(folder / "train-images-idx3-ubyte.gz", ns=(1, 1))
    reloaded = load_dataset("tiny", data_dir=folder)
    assert reloaded is not data
    np.testing.assert_array_equal(reloaded.x_train, new["train_images"])


def test_corrupt_file_in_data_dir_raises_data_error(tmp_path, register_spec):
    arrays = tiny_arrays()
    register_spec(spec_for(arrays))
    write_tiny_folder(tmp_path, arrays)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"<html><body>404</body></html>")
    with pytest.raises(DataError, match=f"^{bad}: is an HTML page"):
        load_dataset("tiny", data_dir=tmp_path)


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10")
    assert "mnist" in str(info.value) and "fashion-mnist" in str(info.value)
    assert get_spec("Fashion_MNIST") is DATASETS["fashion-mnist"]


def test_shipped_specs_are_complete():
    for spec in DATASETS.values():
        assert spec.num_classes == len(spec.classes) == 10
        assert all(len(f.sha256) == 64 for f in spec.files.values())
        assert spec.mirrors and all(m.startswith("http") and m.endswith("/") for m in spec.mirrors)
        assert spec.license
    assert DATASETS["fashion-mnist"].classes[0] == "T-shirt/top" and DATASETS["fashion-mnist"].classes[9] == "Ankle boot"
