"""Download a dataset's files: mirrors in order, a timeout and a retry each, checksums verified.

pooch's HTTPDownloader does the HTTP (timeout, streaming, progress hook). What pooch lacks is written
here: the fallback across mirrors with one combined error, and verification by the SHA-256 of the
DECOMPRESSED content (pooch hashes the .gz as downloaded, which differs for a recompressed copy).

Every file is downloaded into a temporary file beside its target (digitlab.files.atomic_path) and
renamed only after it is verified, so a failed, cut or corrupt download never leaves a file behind.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pooch
import requests
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from digitlab.data.filenames import find_file
from digitlab.data.idx import GZIP_MAGIC, content_sha256, looks_like_html, role_limit
from digitlab.data.sources import ROLES, DatasetSpec, FileSpec
from digitlab.errors import DataError, DownloadError, OutputError
from digitlab.files import atomic_path, ensure_dir

DEFAULT_TIMEOUT = 30.0  # seconds without data before a mirror counts as failed
_CHUNK = 1 << 16


class _BadContent(DownloadError):
    """The server answered, but not with the right file: retrying the same mirror will not help."""


class _TransferFailed(DownloadError):
    """Wraps the HTTP client's exception: requests' errors are OSErrors, which atomic_path would
    otherwise report as a failure to write the file."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class _RichBar:
    """The progress-bar protocol pooch's HTTPDownloader expects (total, update, reset, close), on rich."""

    def __init__(self, progress, label: str):
        self._progress = progress
        self._task = progress.add_task(label, total=None)

    @property
    def total(self):
        return self._progress.tasks[self._task].total

    @total.setter
    def total(self, value):
        self._progress.update(self._task, total=value or None)

    def update(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def reset(self) -> None:
        self._progress.reset(self._task)

    def close(self) -> None:
        self._progress.refresh()

    def discard(self) -> None:
        """Drop the bar of a failed attempt, so only completed files stay on screen."""
        self._progress.remove_task(self._task)


def _reason(exc: BaseException, timeout: float) -> str:
    """A short, one-line description of why a mirror failed."""
    if isinstance(exc, _TransferFailed):
        exc = exc.cause
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason or ''}".strip()
    if isinstance(exc, requests.Timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        found = re.search(r"\[Errno -?\d+\] [^'\")\]]+", str(exc))
        return f"connection failed ({found.group(0).strip() if found else type(exc).__name__})"
    if isinstance(exc, DataError):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _is_permanent(exc: BaseException) -> bool:
    """Failures a retry of the same mirror cannot fix: wrong content, or an HTTP 4xx answer."""
    if isinstance(exc, _BadContent):
        return True
    if isinstance(exc, _TransferFailed):
        exc = exc.cause
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return 400 <= exc.response.status_code < 500
    return False


def _check_download(tmp: Path, file: FileSpec) -> None:
    """Raise _BadContent unless `tmp` holds exactly the file `file` describes."""
    with open(tmp, "rb") as fh:
        head = fh.read(1024)
    if not head:
        raise _BadContent("empty answer (0 bytes)")
    if looks_like_html(head):
        raise _BadContent("answered with an HTML page instead of the file")
    if file.name.endswith(".gz") and head[:2] != GZIP_MAGIC:
        raise _BadContent("answer is not gzip data")
    try:
        digest = content_sha256(tmp, max_bytes=_limit(file))
    except DataError:
        raise _BadContent("answer is a broken gzip stream (cut short?)") from None
    if digest != file.sha256:
        raise _BadContent(f"checksum mismatch: decompressed SHA-256 {digest[:16]}... expected {file.sha256[:16]}...")


def _limit(file: FileSpec) -> int | None:
    """The most bytes the file's content may hold, from its declared count: a gzip bomb stops there."""
    return role_limit("images" if "idx3" in file.name else "labels", file.count)


def _download_verified(url: str, file: FileSpec, dest: Path, timeout: float, bar) -> Path:
    target = dest / file.name
    downloader = pooch.HTTPDownloader(
        progressbar=bar or False,
        chunk_size=_CHUNK,
        timeout=timeout,
        # Ask for the bytes as stored: a server that gzips in transit would otherwise hand
        # requests a body it silently decompresses, and the .gz on disk would not be gzip.
        headers={"Accept-Encoding": "identity"},
    )
    with atomic_path(target) as tmp:  # removed on any exception, renamed onto target on success
        try:
            downloader(url, str(tmp), None)
        except Exception as exc:
            raise _TransferFailed(exc) from exc
        _check_download(tmp, file)
    return target


def fetch_file(file: FileSpec, urls: list[str], dest_dir: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT,
               retries: int = 1, progress=False, dataset: str = "dataset") -> Path:
    """Download one file from the first URL that gives verified content; DownloadError if none does.

    progress: False (silent), True (one line on stderr per file), or a started rich Progress (a bar).

    Each URL is tried 1 + `retries` times for transient errors (connection, timeout, HTTP 5xx) and
    once for permanent ones (HTTP 4xx, wrong content). The final error lists every URL's failure.
    """
    dest = ensure_dir(dest_dir)
    failures: list[str] = []
    for url in urls:
        for attempt in range(1 + max(0, retries)):
            bar = _RichBar(progress, file.name) if not isinstance(progress, bool) else None
            try:
                path = _download_verified(url, file, dest, timeout, bar)
            except OutputError:
                raise  # our own disk (read-only, full): no mirror can fix that
            except Exception as exc:  # any other failure moves on: next try, then next mirror
                if bar is not None:
                    bar.discard()
                last = exc
                if _is_permanent(exc):
                    break
                continue
            if progress is True:
                print(f"digitlab: downloaded {file.name} from {url}", file=sys.stderr)
            return path
        tries = "" if _is_permanent(last) or retries <= 0 else f" (after {attempt + 1} tries)"
        failures.append(f"{url} -> {_reason(last, timeout)}{tries}")
    raise DownloadError(
        f"could not download {dataset} file {file.name} from any mirror: {'; '.join(failures) or 'no mirrors given'}. "
        f"Use a local copy instead: --data-dir DIR (the folder holding the four files) or "
        f"DIGITLAB_DATA_DIR=ROOT (with ROOT/{dataset}/ holding them)"
    )


def _verified(path: Path | None, file: FileSpec) -> bool:
    if path is None:
        return False
    try:
        return content_sha256(path, max_bytes=_limit(file)) == file.sha256
    except DataError:
        return False


def fetch(spec: DatasetSpec, dest_dir: str | os.PathLike, mirrors: tuple[str, ...] | list[str] | None = None,
          timeout: float = DEFAULT_TIMEOUT, retries: int = 1, progress: bool = True) -> Path:
    """Make `dest_dir` hold the dataset's four verified IDX files; return `dest_dir`.

    Files already there and matching their checksum are kept; missing or corrupt ones are fetched
    from `mirrors` (default: the spec's) in order. progress=True shows a rich bar on a terminal and
    one line per file otherwise. Raises DownloadError naming every mirror's failure.
    """
    dest = ensure_dir(dest_dir)
    mirror_list = tuple(spec.mirrors if mirrors is None else mirrors)
    todo = [role for role in ROLES if not _verified(find_file(dest, spec.files[role]), spec.files[role])]
    if not todo:
        return dest

    bar_or_lines = bool(progress)
    if progress and sys.stderr.isatty():
        bar_or_lines = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), console=Console(stderr=True))
        bar_or_lines.start()
    try:
        for role in todo:
            fetch_file(spec.files[role], spec.urls(role, mirror_list), dest, timeout=timeout,
                       retries=retries, progress=bar_or_lines, dataset=spec.name)
    finally:
        if not isinstance(bar_or_lines, bool):
            bar_or_lines.stop()
    return dest
