"""Where a dataset's files are.

Lookup order (first match wins):
1. an explicit folder (`data_dir`, the CLI's --data-dir) that holds the dataset's files. If it does
   not hold them, that is an error: an explicit choice never silently falls through;
2. $DIGITLAB_DATA_DIR/<dataset>: the env var names a ROOT with one sub-folder per dataset. A ROOT
   that is missing, that holds the files itself, or whose <dataset> folder lacks some of them is an
   error naming the fix; a ROOT without a <dataset> folder (it may hold other datasets) falls through;
3. the user cache: $DIGITLAB_CACHE_DIR/<dataset> if set, else platformdirs' user cache
   (~/.cache/digitlab/<dataset>, honouring XDG_CACHE_HOME);
4. a download into the cache, unless download=False (then a DataError says where it looked).

A folder "holds" a dataset when it has all four IDX files (each as the official .gz name, the raw
name without .gz, or the raw name with '.idx' such as train-images.idx3-ubyte), or the spec's
Keras-style .npz (mnist.npz).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from digitlab.data.download import fetch
from digitlab.data.filenames import find_file
from digitlab.data.sources import ROLES, DatasetSpec, get_spec
from digitlab.errors import DataError, DownloadError

ENV_DATA_DIR = "DIGITLAB_DATA_DIR"
ENV_CACHE_DIR = "DIGITLAB_CACHE_DIR"


def find_idx_files(folder: str | os.PathLike, spec: DatasetSpec) -> tuple[dict[str, Path], list[str]]:
    """(role -> path for the files found, names of the files missing)."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role in ROLES:
        path = find_file(folder, spec.files[role])
        if path is None:
            missing.append(spec.files[role].name)
        else:
            found[role] = path
    return found, missing


def npz_path(folder: str | os.PathLike, spec: DatasetSpec) -> Path | None:
    """The spec's .npz in `folder` if present."""
    if spec.npz is None:
        return None
    path = Path(folder) / spec.npz.name
    return path if path.is_file() else None


def holds_dataset(folder: str | os.PathLike, spec: DatasetSpec) -> bool:
    """True if `folder` has all four IDX files or the spec's .npz."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    return not find_idx_files(folder, spec)[1] or npz_path(folder, spec) is not None


def cache_root() -> Path:
    """The cache root ($DIGITLAB_CACHE_DIR, else platformdirs' user cache for digitlab)."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser().resolve()

    return Path(platformdirs.user_cache_dir("digitlab", appauthor=False))


def cache_dir(name: str) -> Path:
    """The cache folder of one dataset: <cache root>/<dataset>."""
    return cache_root() / get_spec(name).name


def env_dir(name: str) -> Path | None:
    """$DIGITLAB_DATA_DIR/<dataset>, or None when the variable is unset."""
    root = os.environ.get(ENV_DATA_DIR)
    if not root:
        return None
    return Path(root).expanduser().resolve() / get_spec(name).name


def _expected_files(spec: DatasetSpec) -> str:
    names = ", ".join(spec.files[role].name for role in ROLES)
    npz = f" (or {spec.npz.name})" if spec.npz else ""
    return f"the four IDX files {names}, .gz or raw{npz}"


def _check_explicit(folder: Path, spec: DatasetSpec) -> Path:
    if not folder.exists():
        raise DataError(f"data dir {folder} does not exist: pass --data-dir the folder that holds "
                        f"{_expected_files(spec)}")
    if not folder.is_dir():
        raise DataError(f"data dir {folder} is a file, not a folder: pass --data-dir the folder that holds "
                        f"{_expected_files(spec)}")
    found, missing = find_idx_files(folder, spec)
    if missing and npz_path(folder, spec) is None:
        hint = ""
        if holds_dataset(folder / spec.name, spec):
            hint = f"; {folder / spec.name} holds them: use --data-dir {folder / spec.name}"
        what = f"lacks {', '.join(missing)}" if found else f"holds no {spec.name} files"
        raise DataError(f"data dir {folder} {what}: it must hold {_expected_files(spec)}{hint}")
    return folder


def _check_env_root(spec: DatasetSpec) -> Path | None:
    """$DIGITLAB_DATA_DIR/<dataset> when it holds the dataset, None when the variable is unset or
    ROOT has no files for it; DataError when the variable is set but cannot be what was meant."""
    folder = env_dir(spec.name)
    if folder is None:
        return None
    root = folder.parent
    setting = f"{ENV_DATA_DIR}={os.environ[ENV_DATA_DIR]}"
    layout = f"it names a ROOT folder with ROOT/{spec.name} holding {_expected_files(spec)}"
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file, not a folder"
        raise DataError(f"{setting}: {root} {what}; {layout}. Set it to such a folder, or unset it")
    if holds_dataset(folder, spec):
        return folder
    if holds_dataset(root, spec):
        fix = (f"set {ENV_DATA_DIR}={root.parent}" if root.name == spec.name
               else f"move them into {folder}, or pass --data-dir {root}")
        raise DataError(f"{setting}: {root} holds the {spec.name} files itself, but {layout}: {fix}")
    found, missing = find_idx_files(folder, spec) if folder.is_dir() else ({}, [])
    if found:
        raise DataError(f"{setting}: {folder} lacks {', '.join(missing)}; {layout}. Add the missing files "
                        f"(or delete {folder} to use the cache)")
    return None


def resolve_data_dir(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder that holds dataset `name`, found in the lookup order above (downloading if allowed).

    Raises ConfigError for an unknown dataset and DataError when the data cannot be found.
    """
    spec = get_spec(name)
    if data_dir is not None:
        return _check_explicit(Path(data_dir).expanduser().resolve(), spec)

    looked: list[str] = []
    from_env = _check_env_root(spec)
    if from_env is not None:
        return from_env
    if env_dir(spec.name) is not None:
        looked.append(f"${ENV_DATA_DIR}/{spec.name} ({env_dir(spec.name)})")
    else:
        looked.append(f"${ENV_DATA_DIR} (not set)")

    cached = cache_dir(spec.name)
    if holds_dataset(cached, spec):
        return cached
    looked.append(f"the cache ({cached})")

    if not download:
        raise DataError(
            f"{spec.name} not found: looked in {', '.join(looked)} and downloads are off; "
            f"run 'digitlab data download --dataset {spec.name}', or pass --data-dir DIR (a folder holding "
            f"{_expected_files(spec)}), or set {ENV_DATA_DIR}=ROOT with ROOT/{spec.name} holding them"
        )
    try:
        return fetch(spec, cached)
    except DownloadError as error:
        raise DownloadError(f"{spec.name} is not in {' nor '.join(looked)}, and {error}") from None
