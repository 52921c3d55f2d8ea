"""A full disk or a read-only output folder: one clear line on stderr, a non-zero exit, and the files of
the previous run byte-identical afterwards (no temp files left either).

Two kinds of test, and what each one simulates:
- in-process (always run): the CLI's `main()` with the OS failing the way it would. Read-only:
  `os.open(..., O_CREAT)` and `os.mkdir` inside the run folder raise EROFS, as the kernel does on a
  read-only mount (chmod 0o555 cannot be used: CI runs as root, and root writes through it). Full
  disk: `os.fsync` raises ENOSPC, which is where a full disk surfaces for delayed-allocation file
  systems and which every atomic write goes through (even files written by native libraries).
- real (run where unprivileged user+mount namespaces exist, skipped elsewhere): the CLI in a
  subprocess writing to a real tmpfs that is mounted read-only, or filled to the last byte.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys

import pytest
from scale_helpers import cli_env, write_idx_dataset

from digitlab.cli.main import main

TRAIN = ["train", "--model", "mlp", "--model-arg", "hidden=32", "--epochs", "1", "--threads", "1",
         "--device", "cpu", "--no-download"]


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("d") / "data", 600, 100)


@pytest.fixture
def old_run(tmp_path, small_data, capsys):
    """A finished run folder (model, history, curves, metrics) that the next run must not damage."""
    run = tmp_path / "run"
    assert main([*TRAIN, "--data-dir", str(small_data), "-o", str(run), "--seed", "1"]) == 0
    capsys.readouterr()
    return run


def _inside(path, folder) -> bool:
    return os.path.abspath(os.fsdecode(path)).startswith(str(folder) + os.sep)


def _assert_one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1, err
    assert err[0].startswith("digitlab train: error: cannot write "), err[0]
    for needle in needles:
        assert needle in err[0]


def test_read_only_folder_simulated(old_run, small_data, capsys, monkeypatch):
    before = _snapshot(old_run)
    real_open, real_mkdir = os.open, os.mkdir

    def ro_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and _inside(path, old_run):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    def ro_mkdir(path, *args, **kwargs):
        if _inside(path, old_run) or os.path.abspath(path) == str(old_run):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, "File exists", os.fsdecode(path))
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(os, "mkdir", ro_mkdir)
    code = main([*TRAIN, "--data-dir", str(small_data), "-o", str(old_run), "--seed", "2", "--overwrite"])
    monkeypatch.undo()
    _assert_one_line_error(capsys, code, "read-only", "choose a writable output folder")
    assert _snapshot(old_run) == before


@pytest.mark.parametrize("checkpoints", [False, True], ids=["final-save", "checkpoint"])
def test_full_disk_simulated(old_run, small_data, capsys, monkeypatch, checkpoints):
    before = _snapshot(old_run)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    extra = ["--checkpoint-every", "1"] if checkpoints else []
    code = main([*TRAIN, *extra, "--data-dir", str(small_data), "-o", str(old_run), "--seed", "2", "--overwrite"])
    monkeypatch.undo()
    _assert_one_line_error(capsys, code, "the disk is full")
    after = _snapshot(old_run)
    assert after == before  # no temp file left behind either, and no checkpoint half-written
    assert not any(p.name.startswith(".") for p in old_run.rglob("*"))


# --- a real tmpfs, in a user + mount namespace -----------------------------------------------------

_SCRIPT = r"""
set -u
mount -t tmpfs -o size=4m tmpfs "$MNT" || exit 97
cp -a "$OLD" "$MNT/run"
if [ "$MODE" = ro ]; then
  mount -o remount,ro "$MNT" || exit 98
else
  dd if=/dev/zero of="$MNT/filler" bs=4096 2>/dev/null
  dd if=/dev/zero of="$MNT/filler2" bs=1 2>/dev/null  # the last partial page
fi
"$@" > "$RES/stdout" 2> "$RES/stderr"
echo $? > "$RES/rc"
(cd "$MNT/run" && find . -type f | sort | while read -r f; do sha256sum "$f"; done) > "$RES/after"
"""


def _namespaces_work(tmp_path) -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    out = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                         capture_output=True, timeout=30)
    return out.returncode == 0


def _run_on_tmpfs(tmp_path, old_run, mode, args):
    if not _namespaces_work(tmp_path):
        pytest.skip("unprivileged user+mount namespaces are unavailable: cannot mount a real tmpfs")
    mnt, res = tmp_path / "mnt", tmp_path / "res"
    mnt.mkdir()
    res.mkdir()
    env = {**cli_env(), "MNT": str(mnt), "RES": str(res), "OLD": str(old_run), "MODE": mode}
    subprocess.run(["unshare", "-rm", "sh", "-c", _SCRIPT, "sh", sys.executable, "-m", "digitlab", *args,
                    "-o", str(mnt / "run")], env=env, timeout=240, check=True)
    after = {}
    for line in (res / "after").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        after[name.removeprefix("./")] = digest
    errors = [ln for ln in (res / "stderr").read_text().splitlines() if not _is_library_warning(ln)]
    return int((res / "rc").read_text()), errors, after


def _is_library_warning(line: str) -> bool:
    # torch warns (once) when handed the dataset's read-only arrays; not digitlab's error output.
    return "UserWarning" in line or line.startswith("  t = torch.from_numpy")


@pytest.mark.parametrize("mode,hint", [("ro", "read-only"), ("full", "the disk is full")])
def test_real_tmpfs_checkpoint_write(old_run, small_data, tmp_path, mode, hint):
    before = _snapshot(old_run)
    args = [*TRAIN, "--checkpoint-every", "1", "--data-dir", str(small_data), "--seed", "2", "--overwrite"]
    code, errors, after = _run_on_tmpfs(tmp_path, old_run, mode, args)
    assert code == 1
    assert len(errors) == 1 and errors[0].startswith("digitlab train: error: cannot write ") and hint in errors[0], errors
    assert after == before


def test_real_tmpfs_full_disk_on_final_model_save(old_run, small_data, tmp_path):
    before = _snapshot(old_run)
    code, errors, after = _run_on_tmpfs(tmp_path, old_run, "full", [*TRAIN, "--data-dir", str(small_data), "--seed", "2", "--overwrite"])
    assert after == before
    assert code == 1 and len(errors) == 1 and "the disk is full" in errors[0], errors


def test_real_tmpfs_read_only_on_final_model_save(old_run, small_data, tmp_path):
    before = _snapshot(old_run)
    code, errors, after = _run_on_tmpfs(tmp_path, old_run, "ro", [*TRAIN, "--data-dir", str(small_data), "--seed", "2", "--overwrite"])
    assert code == 1 and len(errors) == 1 and "read-only" in errors[0], errors
    assert after == before
