"""The commands that write runs check their output folder before any work (digitlab.files.prepare_output_dir).

train, cv, sweep, reproduce and ensemble: an unwritable folder or an existing run fails at once with one
line (the data is never loaded); --overwrite replaces a run, and the old run's stale files do not survive.
"""

from __future__ import annotations

import errno
import json
import tempfile

import pytest

from digitlab.cli.main import main
from digitlab.models.storage import load_model

TINY = ["--model", "mlp", "--model-arg", "hidden=16", "--epochs", "1", "--batch-size", "64", "--device", "cpu",
        "--threads", "1"]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading its data."""
    import digitlab.cli.common
    import digitlab.cli.cv
    import digitlab.cli.sweep
    import digitlab.cli.train

    def refuse(args):
        raise AssertionError("the data was loaded before the output folder was checked")

    for module in (digitlab.cli.common, digitlab.cli.cv, digitlab.cli.sweep, digitlab.cli.train):
        monkeypatch.setattr(module, "load_data", refuse)


def _old_run(folder):
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{}")
    (folder / "report.html").write_text("stale")
    return folder


def _one_line_error(capsys, code, *needles) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


COMMANDS = {
    "train": ["train", *TINY],
    "cv": ["cv", *TINY, "--folds", "2"],
    "sweep": ["sweep", *TINY, "--param", "lr=1e-3,2e-3", "--folds", "2"],
    "reproduce": ["reproduce", "--folds", "2", "--epochs", "1"],
    "ensemble-train": ["ensemble", "--train", "fast", "--seeds", "2"],
    "ensemble": ["ensemble", "runs/a", "runs/b"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_existing_run_is_refused_before_any_work(tmp_path, capsys, no_work, command):
    out = _old_run(tmp_path / "out")
    code = main([*COMMANDS[command], "-o", str(out)])
    _one_line_error(capsys, code, "already holds a run", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "report.html"]


@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_output_fails_before_any_work(tmp_path, capsys, no_work, monkeypatch, command):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code = main([*COMMANDS[command], "-o", str(tmp_path / "out")])
    _one_line_error(capsys, code, "cannot write", "read-only", "choose a writable output folder")


def test_train_overwrite_replaces_the_run_and_drops_its_stale_files(tmp_path, tiny_data_dir, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data-dir", str(tiny_data_dir), "-o", str(out)]) == 0
    (out / "report.html").write_text("a report of the old run")
    old_sha = json.loads((out / "model.json").read_text())["weights_sha256"]
    capsys.readouterr()
    code = main(["train", *TINY, "--seed", "7", "--data-dir", str(tiny_data_dir), "-o", str(out)])
    _one_line_error(capsys, code, "already holds a run", "--overwrite", "--resume")
    assert main(["train", *TINY, "--seed", "7", "--data-dir", str(tiny_data_dir), "-o", str(out), "--overwrite"]) == 0
    assert not (out / "report.html").exists()
    assert json.loads((out / "model.json").read_text())["weights_sha256"] != old_sha
    assert load_model(out).digitlab_meta["seed"] == 7


def test_cv_reuse_model_never_writes_over_the_fresh_cv(tmp_path, capsys, no_work, monkeypatch):
    fresh = tmp_path / "runs" / "cv-mlp"
    fresh.mkdir(parents=True)
    (fresh / "cv.json").write_text("{}")
    code = main(["cv", *TINY, "--reuse-model", "-o", str(fresh)])
    _one_line_error(capsys, code, "already holds a run")
    # Its default folder is its own, so the default invocation cannot reach the fresh CV either.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="the data was loaded"):
        main(["cv", *TINY, "--reuse-model"])
    assert (tmp_path / "runs" / "cv-leaky-mlp").is_dir()
    assert sorted(p.name for p in fresh.iterdir()) == ["cv.json"]


def test_overwrite_and_resume_together_are_refused(tmp_path, capsys, no_work):
    out = _old_run(tmp_path / "out")
    code = main(["cv", *TINY, "-o", str(out), "--overwrite", "--resume"])
    _one_line_error(capsys, code, "choose one")
