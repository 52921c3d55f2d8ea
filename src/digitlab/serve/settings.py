"""The server's options and their defaults, passed from `digitlab serve` to uvicorn worker processes via environment.

With `--workers N` uvicorn starts N processes that each import the app factory by name, so options
cannot be passed as arguments; they travel as DIGITLAB_SERVE_* environment variables instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from digitlab.errors import ConfigError
from digitlab.inference.limits import DEFAULT_MAX_PIXELS  # noqa: F401 - one pixel limit for CLI, API and server

_PREFIX = "DIGITLAB_SERVE_"

# Defaults, here rather than in limits.py so that the CLI can show them without importing FastAPI.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # a phone photo is 2-8 MB; base64 JSON adds a third
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to send a whole body: a phone upload at 3 Mbit/s needs about 25
DEFAULT_KEEP_ALIVE = 5       # seconds an idle keep-alive connection stays open
DEFAULT_MIN_CONFIDENCE = None  # the model's own default: see digitlab.inference.recognizer.default_min_confidence


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = None          # run folder or model file; None = the shipped model
    runtime: str = "torch"            # torch or onnx
    threads: int = 1                  # torch intra-op threads per worker (1 suits batch-1 requests)
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_confidence: float | None = DEFAULT_MIN_CONFIDENCE
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    def __post_init__(self) -> None:
        if self.runtime not in ("torch", "onnx"):
            raise ConfigError(f"runtime must be torch or onnx, got {self.runtime!r}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if not self.body_timeout > 0:
            raise ConfigError(f"body_timeout must be > 0 seconds, got {self.body_timeout}")

    def to_env(self) -> dict[str, str]:
        return {_PREFIX + f.name.upper(): "" if getattr(self, f.name) is None else str(getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServeSettings:
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = {"threads": int, "max_bytes": int, "max_pixels": int, "min_confidence": float,
                    "body_timeout": float}.get(f.name, str)
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ConfigError(f"{_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        return cls(**values)
