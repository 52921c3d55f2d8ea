"""HTTP API and draw-a-digit page. `create_app` is imported lazily: FastAPI and torch load only when
it is used, so `import digitlab.serve` stays cheap."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from digitlab.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'digitlab.serve' has no attribute {name!r}")
