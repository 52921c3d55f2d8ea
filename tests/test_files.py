"""digitlab.files: atomic writes, and output folders checked before any work."""

from __future__ import annotations

import pytest

from digitlab.errors import OutputError
from digitlab.files import prepare_output_dir, remove_stale


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from digitlab.files import write_text

    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left behind


# --- output folders ---------------------------------------------------------------------------------



def _old_run(folder):
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{}")
    (folder / "report.html").write_text("old")
    return folder


def test_new_or_empty_output_folder_is_created_and_checked(tmp_path):
    assert prepare_output_dir(tmp_path / "a" / "b").is_dir()
    (tmp_path / "empty").mkdir()
    assert prepare_output_dir(tmp_path / "empty") == tmp_path / "empty"
    assert not [p for p in (tmp_path / "empty").iterdir()]  # the write check leaves nothing behind


def test_existing_run_needs_overwrite_or_resume(tmp_path):
    run = _old_run(tmp_path / "run")
    with pytest.raises(OutputError, match="already holds a run: pass --overwrite"):
        prepare_output_dir(run)
    assert prepare_output_dir(run, overwrite=True) == run
    assert prepare_output_dir(run, resume=True) == run
    assert (run / "report.html").exists()  # nothing is deleted before the new run is saved


def test_a_folder_digitlab_did_not_write_is_never_emptied(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds files digitlab did not write"):
        prepare_output_dir(tmp_path, overwrite=True)


def test_a_file_is_not_an_output_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        prepare_output_dir(tmp_path / "f")


def test_overwrite_refuses_a_folder_holding_the_commands_inputs(tmp_path):
    run = _old_run(tmp_path / "ens")
    (run / "seed-0").mkdir()
    with pytest.raises(OutputError, match="an input of this command"):
        prepare_output_dir(run, overwrite=True, keep=(run / "seed-0",))


def test_unwritable_output_fails_at_once(tmp_path, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match="read-only: choose a writable output folder"):
        prepare_output_dir(tmp_path / "out")


def test_remove_stale_keeps_only_what_the_new_run_wrote(tmp_path):
    from digitlab.files import file_states, write_text

    run = _old_run(tmp_path / "run")
    (run / "checkpoints" / "epoch-0001").mkdir(parents=True)
    (run / "checkpoints" / "epoch-0001" / "model.safetensors").write_bytes(b"old")
    before = file_states(run)
    write_text(run / "model.json", '{"new": true}')  # replaced, as every digitlab write is
    (run / "checkpoints" / "epoch-0002").mkdir()
    write_text(run / "checkpoints" / "epoch-0002" / "model.safetensors", "new")
    remove_stale(run, before)
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert left == ["checkpoints", "checkpoints/epoch-0002", "checkpoints/epoch-0002/model.safetensors", "model.json"]
    assert (run / "model.json").read_text() == '{"new": true}'
