"""digitlab.files: atomic writes."""

from __future__ import annotations


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
