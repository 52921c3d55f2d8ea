"""`digitlab train` SIGKILLed mid-epoch, then `digitlab train --resume RUN_DIR`: it finishes, the final
weights are bit-identical to an uninterrupted run's (CPU, --threads 1, same seed), and no checkpoint
visible after the kill is half-written. Real processes, real signals; nothing is simulated."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from scale_helpers import cli_env, digitlab_cmd, run_cli, write_idx_dataset

from digitlab.train.checkpoint import checkpoint_dir, read_checkpoint
from digitlab.train.history import History

TRAIN_ARGS = ["--model", "mlp", "--model-arg", "hidden=128", "--model-arg", "dropout=0.2", "--epochs", "3",
              "--batch-size", "32", "--optimizer", "adam", "--schedule", "cosine", "--seed", "5",
              "--threads", "1", "--device", "cpu", "--no-download", "--checkpoint-every", "1",
              "--keep-checkpoints", "2"]


def _wait_for(path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared (exit {proc.returncode})")
        time.sleep(0.01)


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    data = write_idx_dataset(tmp_path / "data", 8000, 300)
    args = [*TRAIN_ARGS, "--data-dir", str(data)]
    # The reference and the doomed run start together (two cores); one thread each, so neither
    # changes the other's arithmetic.
    reference = subprocess.Popen(digitlab_cmd("train", *args, "-o", str(tmp_path / "ref")), env=cli_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = tmp_path / "run"
    doomed = subprocess.Popen(digitlab_cmd("train", *args, "-o", str(run_dir)), env=cli_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(checkpoint_dir(run_dir) / "epoch-0001" / "checkpoint.json", doomed)
        time.sleep(0.2)  # into epoch 2 (an epoch takes ~1 s here)
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait(timeout=30) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
    ref_out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, ref_out
    assert not (run_dir / "model.json").exists(), "the run finished before the kill: make epochs longer"

    # Whatever the kill interrupted, every visible checkpoint is complete and verifies.
    visible = sorted(p for p in checkpoint_dir(run_dir).iterdir() if not p.name.startswith("."))
    assert visible, "no checkpoint survived"
    for folder in visible:
        read_checkpoint(folder)  # raises on a missing marker or a SHA-256 mismatch

    resumed = run_cli("train", "--resume", str(run_dir), timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from {visible[-1].name}" in resumed.stdout
    assert "warning" not in resumed.stderr.lower().replace("userwarning", "")  # nothing was skipped

    ref_weights = load_file(str(tmp_path / "ref" / "model.safetensors"))
    new_weights = load_file(str(run_dir / "model.safetensors"))
    assert ref_weights.keys() == new_weights.keys()
    for name in ref_weights:
        assert ref_weights[name].equal(new_weights[name]), f"{name} differs after resuming"
    ref_history, new_history = History.from_csv(tmp_path / "ref" / "history.csv"), History.from_csv(run_dir / "history.csv")
    for key in ("loss", "accuracy", "lr"):
        assert ref_history[key] == new_history[key]


def test_resume_refuses_new_settings_and_missing_runs(tmp_path):
    out = run_cli("train", "--resume", str(tmp_path), "--lr", "0.1", "--epochs", "9")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "digitlab train: error: --resume continues with the settings saved in the checkpoint: drop --epochs, --lr"]
    out = run_cli("train", "--resume", str(tmp_path / "nope"))
    assert out.returncode == 2 and "is not a folder" in out.stderr and "Traceback" not in out.stderr


def test_cli_checkpoint_flags_are_checked(tmp_path):
    out = run_cli("train", "--checkpoint-every", "0", "-o", str(tmp_path / "r"), "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "checkpoint interval must be >= 1" in out.stderr


@pytest.mark.timeout(300)
def _children(pid: int) -> list[int]:
    """The pids of a process's children (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
def test_cv_killed_after_a_fold_resumes_the_rest_to_the_same_scores(tmp_path, idx_data_dir):
    """`digitlab cv -o OUT` SIGKILLed once fold 1 is saved; `--resume` skips the saved folds."""
    import json

    # 100 epochs make a fold last about 1.3 s. With 3 the second round of folds (3 and 4) was saved 40 ms
    # after fold 1, so a test process the machine kept waiting that long saw all four saved, and failed.
    args = ["cv", "--model", "mlp", "--model-arg", "hidden=128", "--epochs", "100", "--folds", "4", "--threads", "1",
            "--device", "cpu", "--no-download", "--data-dir", str(idx_data_dir), "--json"]
    out = tmp_path / "cv"
    reference = subprocess.Popen(digitlab_cmd(*args, "-o", str(tmp_path / "ref")), env=cli_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    doomed = subprocess.Popen(digitlab_cmd(*args, "-o", str(out)), env=cli_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(out / "folds" / "fold-01.json", doomed)
        workers = _children(doomed.pid)
        assert workers, "the folds should be running in worker processes"
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait(timeout=30) == -signal.SIGKILL
        # The pool's workers leave with their parent instead of waiting on its pipe for ever.
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the killed cv"
    finally:
        if doomed.poll() is None:
            doomed.kill()
    ref_out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, ref_out
    saved = sorted(p.name for p in (out / "folds").glob("fold-0?.json"))
    assert saved and len(saved) < 4, f"the kill came too late: {saved}"

    resumed = run_cli(*args, "-o", str(out), "--resume", timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    reference_summary = json.loads(ref_out.strip().splitlines()[-1])
    assert summary["resumed_folds"] == list(range(len(saved)))
    assert summary["scores"] == reference_summary["scores"]
