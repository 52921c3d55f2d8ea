"""The real MNIST (and Fashion-MNIST where installed). Skips cleanly when the data is missing.

MNIST comes from $DIGITLAB_DATA_DIR (default ../shared/data beside the repository).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datalayer_helpers import REAL_DATA_ROOT, listing

from digitlab.data.dataset import load_dataset
from digitlab.data.download import fetch
from digitlab.data.locate import holds_dataset
from digitlab.data.sources import DATASETS

pytestmark = pytest.mark.integration

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def real_mnist_root(monkeypatch):
    if not holds_dataset(REAL_DATA_ROOT / "mnist", DATASETS["mnist"]):
        pytest.skip(f"no MNIST under {REAL_DATA_ROOT}/mnist (set DIGITLAB_DATA_DIR)")
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(REAL_DATA_ROOT))
    return REAL_DATA_ROOT


def test_load_dataset_mnist(real_mnist_root):
    start = time.perf_counter()
    data = load_dataset("mnist", download=False)
    seconds = time.perf_counter() - start
    assert data.source == str(real_mnist_root / "mnist")
    assert data.x_train.shape == (60000, 28, 28) and data.x_train.dtype == np.uint8
    assert data.y_train.shape == (60000,) and data.y_train.dtype == np.int64
    assert data.x_test.shape == (10000, 28, 28) and data.y_test.shape == (10000,)
    assert data.y_train[:5].tolist() == [5, 0, 4, 1, 9] and data.y_test[:3].tolist() == [7, 2, 1]
    assert np.bincount(data.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data.x_train.max() == 255 and data.x_train.min() == 0
    # Target is < 0.5 s; the bound is loose for a shared machine and catches a Python-loop parser.
    assert seconds < 3.0, f"loading MNIST took {seconds:.2f} s"
    assert load_dataset("mnist") is data


def cli(*args: str, data_root: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if data_root is not None:
        env["DIGITLAB_DATA_DIR"] = str(data_root)
    return subprocess.run([sys.executable, "-m", "digitlab", "data", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_verify_passes_on_the_shared_copy(real_mnist_root):
    result = cli("verify", data_root=real_mnist_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(line.startswith("ok") for line in result.stdout.splitlines()) == 4


def test_download_from_a_local_mirror_of_the_real_files(real_mnist_root, mirror_server, tmp_path, dead_url):
    www, base, _ = mirror_server
    (www / "mnist").symlink_to(real_mnist_root / "mnist")
    dest = tmp_path / "dl"
    result = cli("download", "--dest", str(dest), "--mirror", dead_url, "--mirror", f"{base}/mnist/",
                 "--timeout", "10")
    assert result.returncode == 0, result.stderr
    assert listing(dest) == sorted(f.name for f in DATASETS["mnist"].files.values())
    # Same files again through the Python API: nothing to do, every file already verifies.
    assert fetch(DATASETS["mnist"], dest, mirrors=[dead_url], progress=False) == dest


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Fashion-MNIST not installed at /usr/share/datasets")
def test_fashion_mnist_verifies_and_loads():
    result = cli("verify", "--dataset", "fashion-mnist", "--data-dir", str(FASHION_DIR))
    assert result.returncode == 0, result.stdout + result.stderr
    data = load_dataset("fashion-mnist", data_dir=FASHION_DIR)
    assert data.x_train.shape == (60000, 28, 28) and data.classes[9] == "Ankle boot"
    assert np.bincount(data.y_train).tolist() == [6000] * 10
