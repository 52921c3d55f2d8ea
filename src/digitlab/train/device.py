"""Choosing the device and the CPU thread count."""

from __future__ import annotations

import ctypes
import platform
from contextlib import contextmanager

import numpy as np
import torch

from digitlab.errors import ConfigError


def resolve_device(name: str = "auto"):
    """'auto' -> cuda, then mps, then cpu. An explicit device that is not available is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine: use --device cpu (or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("MPS is not available on this machine: use --device cpu (or auto)")
    return device


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads; None keeps torch's default (one per physical core)."""
    # Only on a change: torch.set_num_threads re-initialises the OpenMP and MKL thread settings even for
    # the count already in use, and the `fast` preset then trained 15-20% slower (5.5 s against 4.7 s).
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 BF16 / AMX, or AVX-512 emulation)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 dot products in hardware (AVX-512 BF16 or AMX).

    Only then is bf16 autocast a clear win on CPU (about 2x on the GEMMs); with oneDNN's AVX-512
    emulation it is no faster than float32, so `cpu_amp="auto"` stays float32 there.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        native = any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    except RuntimeError:
        return False
    return native and cpu_supports_bf16()


def use_cpu_bf16(cpu_amp: bool | None) -> bool:
    """RuntimeConfig.cpu_amp -> whether CPU training runs under bf16 autocast (None = auto)."""
    if cpu_amp is None:
        return cpu_has_native_bf16()
    return bool(cpu_amp) and cpu_supports_bf16()


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 32 * 1024 * 1024  # glibc's ceiling for the mmap threshold on 64-bit
_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the kernel (glibc only).

    Why: every training step allocates gradients and optimizer temporaries of a few MB. glibc serves
    blocks that size with a fresh mmap and unmaps them on free, so each step page-faults and zeroes
    the same memory again. Measured on the article's mlp (1 thread, CPU time): backward 1.8 -> 0.9 ms
    and the rmsprop step 1.2 -> 0.6 ms per batch. Raising the mmap and trim thresholds makes glibc
    reuse its heap, as jemalloc or tcmalloc (Intel's advice for PyTorch on CPU) would. Returns
    whether the setting was applied; other C libraries are left alone.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, 4 * _KEEP_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False
    _allocator_tuned = ok
    return ok


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy, for reproducible initialisation."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def prepare_training_process() -> None:
    """Process-wide CPU settings for a program that trains (the CLI's train, cv, sweep, ensemble and
    reproduce call it first thing; a script can too).

    The allocator keeps freed memory (tune_allocator), and denormal floats flush to zero. The flush
    mode is per thread and threads copy it from the thread that creates them, so it must be set
    before torch's first parallel op creates the OpenMP pool: set later (as `fit` does for its own
    thread) it misses the pool's threads, where a multiply on denormals ran 3x slower (1.2 ms against
    0.43 ms for 4M values on 2 threads).
    """
    global _process_prepared
    tune_allocator()
    _process_prepared = torch.set_flush_denormal(True)


_process_prepared = False


@contextmanager
def cpu_float_mode():
    """CPU settings for the length of a training run: a reusing allocator and no denormal floats.

    Why flush denormals: rmsprop's running average of squared gradients decays by 0.9 per step for
    weights whose inputs are rarely non-zero (MNIST's border pixels), into the denormal range, where
    every multiply and square root on them is many times slower. Treating them as zero changes no
    result (their square roots are far below eps). Only the calling thread's mode can be set from
    Python; the previous mode is restored at the end (off, torch's default, unless the whole process
    was prepared with prepare_training_process).
    """
    tune_allocator()
    flushed = not _process_prepared and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)
