"""Choosing the device and the CPU thread count."""

from __future__ import annotations

from digitlab.errors import ConfigError


def resolve_device(name: str = "auto"):
    """'auto' -> cuda, then mps, then cpu. An explicit device that is not available is a ConfigError."""
    import torch

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
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 BF16 / AMX, or AVX-512 emulation)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy, for reproducible initialisation."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
