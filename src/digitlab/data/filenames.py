"""The names an IDX file may carry on disk, and finding it in a folder under any of them.

Both the locator (is the dataset here?) and the downloader (which files are still missing?) ask this,
so it sits below both.
"""

from __future__ import annotations

import os
from pathlib import Path

from digitlab.data.sources import FileSpec


def candidate_names(file: FileSpec) -> list[str]:
    """File names accepted for one IDX file, preferred first: name.gz, raw name, raw name with '.idx'."""
    raw = file.name[:-3] if file.name.endswith(".gz") else file.name
    names = [raw + ".gz", raw]
    dotted = raw.replace("-idx", ".idx", 1)
    if dotted != raw:
        names.append(dotted)
    return names


def find_file(folder: str | os.PathLike, file: FileSpec) -> Path | None:
    """The path of `file` in `folder` under any accepted name, or None."""
    folder = Path(folder)
    for candidate in candidate_names(file):
        path = folder / candidate
        if path.is_file():
            return path
    return None
