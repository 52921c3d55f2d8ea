"""Native kernels for the fused mlp step, built from mlp_step.c with the machine's C compiler on first use.

Why native code: see mlp_step.c. Why built here rather than shipped: the kernels are compiled for this
CPU (-march=native: AVX-512 where it has it) and against the OpenMP runtime torch loaded, which a wheel
cannot know. The build takes under a second, once per machine: the library is cached under digitlab's
cache root (`kernels/`), keyed by the source, the compiler and the CPU, and written through a temporary
file and a rename, so two processes building at once never see half a file.

Nothing depends on it: without a C compiler, with a compiler that fails, or with DIGITLAB_NATIVE=0,
`mlp_kernels()` returns None with the reason in `status()`, and the fused step runs its torch version
(the same training, about 1.4x slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch  # noqa: F401  (loaded before the kernels: they must bind to the OpenMP runtime torch loaded)

from digitlab.data.locate import cache_root

SOURCE = Path(__file__).with_name("mlp_step.c")
ENV_SWITCH = "DIGITLAB_NATIVE"
# Tried in order: OpenMP (the kernels share torch's threads), then without (one thread), each first for
# this CPU and then generic. -fno-math-errno lets sqrtf vectorise; the results are the same IEEE ones.
FLAG_SETS = (
    ["-O3", "-march=native", "-fno-math-errno", "-fopenmp"],
    ["-O3", "-fno-math-errno", "-fopenmp"],
    ["-O3", "-march=native", "-fno-math-errno"],
    ["-O3", "-fno-math-errno"],
)

_P, _I, _L, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_float


@dataclass
class MLPKernels:
    """The loaded library's kernels (see mlp_step.c for their arguments) and how it was built."""

    head: object
    rmsprop: object
    gather: object
    live_columns: object
    supported: object
    path: Path
    flags: list
    build_seconds: float  # 0.0 when it came from the cache

    def supports(self, hidden: int, classes: int) -> bool:
        return bool(self.supported(hidden, classes))


_loaded: MLPKernels | None = None
_status = "not loaded yet"
_missing = False  # True when the kernels were wanted but could not be built (not when turned off)
_failed: dict = {}  # compiler -> the status of its failed build: not retried by every later fit in this process


def status() -> str:
    """One line: what `mlp_kernels()` found (for benches and `--verbose` output)."""
    return _status


def missing_reason() -> str | None:
    """Why the kernels could not be built, if they were wanted and could not be (for a one-line note)."""
    return _status if _missing else None


def mlp_kernels() -> MLPKernels | None:
    """The native kernels, built and cached on first use; None if they cannot be (see `status()`)."""
    global _loaded, _status, _missing
    _missing = False
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        _status = f"turned off ({ENV_SWITCH}=0)"
        return None
    if _loaded is not None:
        return _loaded
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        _status, _missing = "no C compiler found (install one, or set CC); the fused step runs on torch ops", True
        return None
    if compiler in _failed:
        _status, _missing = _failed[compiler], True
        return None
    errors = []
    for flags in FLAG_SETS:
        try:
            _loaded = _load(compiler, flags)
        except (OSError, AttributeError, subprocess.SubprocessError, RuntimeError) as exc:
            errors.append(f"{' '.join(flags)}: {exc}")
            continue
        how = f"built in {_loaded.build_seconds:.2f} s" if _loaded.build_seconds else "cached"
        _status = f"native kernels ({how}, {' '.join(flags)}): {_loaded.path}"
        return _loaded
    _status, _missing = f"the C compiler {compiler} failed ({errors[-1]}); the fused step runs on torch ops", True
    _failed[compiler] = _status
    return None


def _load(compiler: str, flags: list) -> MLPKernels:
    """The library for these flags: from the cache, else built into it (a damaged cached one is rebuilt)."""
    path = _cache_path(compiler, flags)
    if path.exists():
        try:
            return _bind(ctypes.CDLL(str(path)), path, flags, 0.0)
        except (OSError, AttributeError):  # not a library, or one without all the kernels: build it again
            path.unlink(missing_ok=True)
    built = _build(compiler, flags, path)
    return _bind(ctypes.CDLL(str(path)), path, flags, built)


def _cache_path(compiler: str, flags: list) -> Path:
    found = shutil.which(compiler) or compiler
    try:
        compiler_id = f"{os.path.realpath(found)}:{os.stat(found).st_mtime_ns}"
    except OSError:
        compiler_id = found
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), compiler_id.encode(), " ".join(flags).encode(), _cpu_id().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_root() / "kernels" / f"mlp_step-{key.hexdigest()[:20]}.so"


def _cpu_id() -> str:
    """The machine and its CPU's model and features: a library built with -march=native fits only these."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags", "Features"))]
        return platform.machine() + "".join(dict.fromkeys(lines))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _build(compiler: str, flags: list, path: Path) -> float:
    """Compile SOURCE into `path` (through a temporary file and a rename); the seconds it took."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *flags, "-shared", "-fPIC", str(SOURCE), "-o", tmp, "-lm"],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"exit status {done.returncode}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return time.perf_counter() - started


def _bind(lib, path: Path, flags: list, built: float) -> MLPKernels:
    head, rmsprop, gather, supported = lib.mlp_head, lib.mlp_rmsprop, lib.mlp_gather, lib.mlp_supported
    live_columns = lib.mlp_live_columns
    head.argtypes = [_I, _I, _I, _I, *[_P] * 11, _I]
    head.restype = None
    rmsprop.argtypes = [_L, _L, _I, _P, _P, _P, _P, _P, _F, _F, _F, _F, _I]
    rmsprop.restype = None
    gather.argtypes = [_L, _P, _P, _L, _I, _P, _I, _P, _L, _I]
    gather.restype = None
    live_columns.argtypes = [_L, _L, _I, _P, _P, _I]
    live_columns.restype = _I
    supported.argtypes = [_I, _I]
    supported.restype = _I
    return MLPKernels(head, rmsprop, gather, live_columns, supported, path, list(flags), built)
