"""digitlab's exceptions.

Every error a user can cause is one of these. The message is a single line that names the problem
and, where there is one, the fix. The CLI prints it on stderr and exits non-zero; the HTTP server turns
it into a 4xx JSON answer. Never `assert` on user input: asserts vanish under `python -O`.
"""

from __future__ import annotations

import importlib


class DigitlabError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(DigitlabError):
    """A bad argument or setting (wrong value, unknown name, impossible combination)."""

    exit_code = 2


class DataError(DigitlabError):
    """A data file is missing, corrupt or inconsistent."""


class DownloadError(DataError):
    """Every mirror failed, or a download did not match its checksum."""


class ModelError(DigitlabError):
    """A model file is missing, corrupt, or does not match its architecture."""


class ImageError(DigitlabError):
    """An input image cannot be decoded or holds no digit."""


class OutputError(DigitlabError):
    """A file cannot be written (read-only folder, full disk, permissions)."""


class MissingExtraError(DigitlabError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import `module` or raise MissingExtraError naming `pip install "digitlab[extra]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: install the '{extra}' extra with "
            f"pip install \"digitlab[{extra}]\" ({exc})"
        ) from None
