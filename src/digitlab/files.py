"""Crash-safe file writing.

Every file digitlab writes goes through `atomic_write`: the bytes land in a temporary file in the same
folder, are fsync'ed, and replace the target with `os.replace`, which is atomic on POSIX and Windows.
A crash, a full disk or a read-only folder leaves the previous file (or none), never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from digitlab.errors import DataError, OutputError

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or choose another output folder",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another output folder",
    errno.EROFS: "the file system is read-only: choose a writable output folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
}


def output_error(path: Path, exc: OSError) -> OutputError:
    hint = _HINTS.get(exc.errno, exc.strerror or str(exc))
    return OutputError(f"cannot write {path}: {hint}")


def fsync_dir(folder: Path) -> None:
    # Make the rename itself durable. Not every platform can open a folder; that is fine.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) or raise OutputError with a clear reason."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    For libraries that insist on writing to a file name themselves (safetensors, matplotlib, ONNX).
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file for writing; it replaces `path` only if the block completes."""
    binary = "b" in mode
    with atomic_path(path) as tmp:
        try:
            with open(tmp, mode, encoding=None if binary else encoding) as fh:
                yield fh
                fh.flush()
        except OSError as exc:
            raise output_error(Path(path), exc) from None


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and Paths show up in configs and metrics.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_csv(path: str | os.PathLike, header: list[str], rows: list[list[Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib Figure atomically as PNG; a pyplot-made figure is also closed.

    digitlab's own figures are plain `Figure`s on an Agg canvas, which pyplot never holds. One made
    with pyplot stays registered until `plt.close`; pyplot is looked up, not imported, since a figure
    can only be registered with it once something has loaded it.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    return Path(path)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON or raise a DigitlabError-derived error naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc}); recreate it") from None


# --- output folders -------------------------------------------------------------------------------

# Files and folders only digitlab's run-writing commands create: a folder holding one of them is an
# earlier run (train, cv, sweep, reproduce, ensemble), which only --overwrite may replace.
RUN_MARKERS = ("model.json", "metrics.json", "checkpoints", "cv.json", "scores.json", "folds", "sweep.csv",
               "best.json", "reproduce.json", "ensemble.json")


def prepare_output_dir(path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False,
                       keep: tuple = (), flag_hint: str = "--overwrite") -> Path:
    """Check an output folder before any work starts; create it and return it.

    Refuses (OutputError, one line): a file where the folder should be, a folder that cannot be written,
    an earlier run without `overwrite` or `resume`, any other non-empty folder (digitlab never empties a
    folder it did not write), and with `overwrite` a folder holding one of `keep` (the inputs of this
    very command). Nothing is deleted here: the stale files of a replaced run go only once the new run
    is saved (`file_states` then `remove_stale`), so a failed run leaves the old one whole.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file, not a folder: choose a folder name with -o")
    try:
        entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    except OSError as exc:
        raise output_error(folder, exc) from None
    if entries and not resume:
        if not _holds_run(folder, entries):
            raise OutputError(f"output {folder} is not empty and holds files digitlab did not write "
                              f"({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}): "
                              "choose a new or empty folder with -o")
        if not overwrite:
            raise OutputError(f"output {folder} already holds a run: pass {flag_hint} to replace it, "
                              "or choose another folder with -o")
        root = folder.resolve()
        for kept in keep:
            kept_path = Path(kept).resolve()
            if kept_path == root or root in kept_path.parents:
                raise OutputError(f"output {folder} holds {kept}, an input of this command: "
                                  "choose another folder with -o")
    folder = ensure_dir(folder)
    try:  # permissions alone do not tell (root, read-only mounts): create and remove a file
        fd, probe = tempfile.mkstemp(prefix=".digitlab-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(folder, exc) from None
    return folder


def _holds_run(folder: Path, entries: list[str]) -> bool:
    """True if `folder` or one of its sub-folders (reproduce's train/, ensemble's seed-0/) holds a run."""
    if any(name in RUN_MARKERS for name in entries):
        return True
    for name in entries:
        sub = folder / name
        with contextlib.suppress(OSError):
            if sub.is_dir() and not sub.is_symlink() and any((sub / m).exists() for m in RUN_MARKERS):
                return True
    return False


def file_states(path: str | os.PathLike) -> dict[Path, tuple[int, int, int]]:
    """{file: (inode, mtime_ns, size)} of every file under `path` ({} if it does not exist)."""
    states = {}
    folder = Path(path)
    if folder.is_dir():
        for file in folder.rglob("*"):
            with contextlib.suppress(OSError):
                if file.is_file() and not file.is_symlink():
                    st = file.lstat()
                    states[file] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return states


def remove_stale(path: str | os.PathLike, before: dict[Path, tuple[int, int, int]]) -> list[Path]:
    """Delete what an earlier run left in `path`: the files of `before` (file_states() taken when the
    new run started) that are still exactly as they were, then the folders this leaves empty.

    Every digitlab write replaces its file (a new inode), so whatever the new run wrote is kept, with
    no reliance on clocks. Returns the removed files.
    """
    removed = []
    for file, state in before.items():
        with contextlib.suppress(FileNotFoundError):
            st = file.lstat()
            if (st.st_ino, st.st_mtime_ns, st.st_size) == state:
                try:
                    file.unlink()
                except OSError as exc:
                    raise output_error(file, exc) from None
                removed.append(file)
    root = Path(path)
    for folder in sorted({f.parent for f in removed}, key=lambda p: len(p.parts), reverse=True):
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break
            folder = folder.parent
    return removed


def remove_temp_leftovers(folder: str | os.PathLike, names: tuple[str, ...]) -> None:
    """Delete the temporary files `atomic_path` leaves when a process is killed mid-write, for `names`."""
    for name in names:
        for leftover in Path(folder).glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()
