"""`digitlab data ...` run as a user runs it: `python -m digitlab` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from datalayer_helpers import write_tiny_folder


def run(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITLAB_DATA_DIR", "DIGITLAB_DEBUG")}
    env["DIGITLAB_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "digitlab", "data", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("digitlab data: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_missing_data_dir_is_one_line_on_stderr(tmp_path, isolated_data_env):
    missing = tmp_path / "nope"
    result = run("describe", "--data-dir", str(missing), cache=isolated_data_env)
    assert_one_line_error(result, f"data dir {missing} does not exist", "train-images-idx3-ubyte.gz")
    assert result.stdout == ""


def test_corrupt_file_is_one_line_on_stderr(tmp_path, isolated_data_env):
    write_tiny_folder(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    result = run("describe", "--data-dir", str(tmp_path), cache=isolated_data_env)
    assert_one_line_error(result, f"{bad}: is a truncated gzip file")


def test_nothing_found_without_download_is_one_line(isolated_data_env):
    result = run("describe", "--no-download", cache=isolated_data_env)
    assert_one_line_error(result, "mnist not found", str(isolated_data_env / "mnist"), "downloads are off")


def test_unknown_dataset_exits_2(isolated_data_env):
    result = run("describe", "--dataset", "cifar", cache=isolated_data_env)
    assert_one_line_error(result, "unknown dataset 'cifar'", "fashion-mnist")
    assert result.returncode == 2


def test_describe_text_and_json(tmp_path, isolated_data_env):
    arrays = write_tiny_folder(tmp_path)
    text = run("describe", "--data-dir", str(tmp_path), cache=isolated_data_env)
    assert text.returncode == 0, text.stderr
    assert "train_images.shape  (12, 28, 28)" in text.stdout and "len(test_labels)    6" in text.stdout
    as_json = run("describe", "--data-dir", str(tmp_path), "--json", cache=isolated_data_env)
    desc = json.loads(as_json.stdout)
    assert desc["test"]["class_counts"] == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    assert desc["train"]["pixels"]["max"] == int(arrays["train_images"].max())


def test_samples_writes_a_png(tmp_path, isolated_data_env):
    write_tiny_folder(tmp_path / "d")
    out = tmp_path / "out" / "samples.png"
    result = run("samples", "--data-dir", str(tmp_path / "d"), "-o", str(out), "--n", "4", "--split", "test",
                 cache=isolated_data_env)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["samples.png"]  # no temp file left

    too_many = run("samples", "--data-dir", str(tmp_path / "d"), "-o", str(out), "--n", "7", "--split", "test",
                   cache=isolated_data_env)
    assert_one_line_error(too_many, "--n 7: the test split holds only 6 images")
    not_png = run("samples", "--data-dir", str(tmp_path / "d"), "-o", str(tmp_path / "s.jpg"), cache=isolated_data_env)
    assert_one_line_error(not_png, "ending in .png")


def test_verify_reports_each_file_and_fails_on_mismatch(tmp_path, isolated_data_env):
    # Tiny files are valid IDX but not the official MNIST: every checksum must mismatch.
    write_tiny_folder(tmp_path)
    result = run("verify", "--data-dir", str(tmp_path), cache=isolated_data_env)
    assert result.returncode == 1
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 4 and all("differs from the official" in line for line in fails)
    assert all("expected 60,000" in line or "expected 10,000" in line for line in fails)
    assert_one_line_error(result, "4 of 4 checks failed")


def test_data_without_subcommand_shows_usage(isolated_data_env):
    result = run(cache=isolated_data_env)
    assert result.returncode == 2 and "describe" in result.stderr and "download" in result.stderr


def test_download_rejects_bad_timeout(isolated_data_env):
    assert_one_line_error(run("download", "--timeout", "0", cache=isolated_data_env), "--timeout 0")


def test_samples_show_the_first_images_unless_random(tmp_path, monkeypatch):
    import numpy as np

    from digitlab.cli.main import main
    from digitlab.viz import samples

    arrays = write_tiny_folder(tmp_path / "d")
    shown = []
    real = samples.sample_grid_figure
    monkeypatch.setattr(samples, "sample_grid_figure",
                        lambda images, labels, **kw: shown.append((images, kw["title"])) or real(images, labels, **kw))
    base = ["data", "samples", "--data-dir", str(tmp_path / "d"), "--n", "4", "--split", "train"]
    assert main([*base, "-o", str(tmp_path / "first.png")]) == 0
    assert np.array_equal(shown[-1][0], arrays["train_images"][:4]) and "first 4" in shown[-1][1]
    assert main([*base, "-o", str(tmp_path / "random.png"), "--seed", "3"]) == 0
    assert "seed 3" in shown[-1][1] and not np.array_equal(shown[-1][0], arrays["train_images"][:4])


def test_sample_indices():
    import numpy as np

    from digitlab.cli.data import sample_indices

    assert sample_indices(100, 9)[0].tolist() == list(range(9))
    pick, _ = sample_indices(100, 9, random=True)
    assert pick.tolist() == sorted(set(pick.tolist())) and len(pick) == 9 and pick.max() < 100
    assert np.array_equal(pick, sample_indices(100, 9, seed=0)[0])  # --seed implies --random; default seed 0
