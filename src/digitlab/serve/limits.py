"""Request limits, and reading a request body without ever holding more than the byte limit.

FastAPI's `UploadFile`/`Body` parameters read the whole body before any check runs, so a 1 GB upload
would be received (spooled to disk) before being refused. Here the declared Content-Length is checked
first, and the bytes are counted as they arrive, so a client that lies about (or omits) the length is
cut off as soon as it passes the limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from digitlab.errors import ConfigError
from digitlab.serve.errors import ApiError
from digitlab.serve.settings import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

@dataclass(frozen=True)
class ServeLimits:
    """What one request may cost.

    max_bytes: largest request body in bytes (upload + multipart framing, or the JSON text).
    max_pixels: largest image, width * height, checked from the image header before decoding.
    body_timeout: seconds a client has to send the whole body (408 after), so that a slow or stalled
      client cannot hold a connection and its buffer for ever.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.max_bytes, int) or self.max_bytes < 1024:
            raise ConfigError(f"max_bytes must be an integer >= 1024, got {self.max_bytes!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < 28 * 28:
            raise ConfigError(f"max_pixels must be an integer >= 784 (28x28), got {self.max_pixels!r}")
        if not isinstance(self.body_timeout, (int, float)) or not self.body_timeout > 0:
            raise ConfigError(f"body_timeout must be a number of seconds > 0, got {self.body_timeout!r}")


def too_large(limit: int, what: str = "request body") -> ApiError:
    return ApiError(
        413,
        f"{what} is larger than the limit of {limit:,} bytes: send a smaller image "
        f"(or start the server with a larger --max-bytes)",
    )


async def read_body(request: Request, max_bytes: int, timeout: float = DEFAULT_BODY_TIMEOUT) -> bytes:
    """The request body as bytes; 413 as soon as it is known to exceed `max_bytes`, 408 when it has
    not all arrived within `timeout` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared!r} is not a number") from None
        if length > max_bytes:
            raise too_large(max_bytes)
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_bytes:
                    raise too_large(max_bytes)
                chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout:g} s ({received:,} bytes came): "
                            "send it at once, or start the server with a longer --body-timeout",
                       headers={"Connection": "close"}) from None
    return b"".join(chunks)
