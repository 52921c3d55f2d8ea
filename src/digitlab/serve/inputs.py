"""Turn an HTTP request into one input: encoded image bytes, or a 28x28 pixel array.

Accepted bodies (the same for /api/predict and /api/read):
- multipart/form-data with one file field (named `file`): a browser form or `curl -F file=@digit.png`;
- application/json: `{"image": "<base64 PNG/JPEG, data: URL allowed>"}` or
  `{"pixels": [[...28 numbers...] x 28]}` with values in [0, 1] (0 = background, 1 = ink), plus an
  optional `"include_image": true`;
- a raw image body with Content-Type image/* (or application/octet-stream): `curl --data-binary @x.png`.
Anything else is a 415. Every malformed body is a 422 with a one-line reason; nothing here can raise
anything but ApiError.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

try:  # pydantic-core's parser (pydantic 2, FastAPI's own dependency): ~5x faster than json.loads here
    from pydantic_core import from_json
except ImportError:  # pragma: no cover - pydantic 1
    from json import loads as from_json
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from digitlab.serve.errors import ApiError
from digitlab.serve.limits import ServeLimits, read_body

_JSON_KEYS = {"image", "pixels", "include_image"}
_ACCEPTED = (
    "send multipart/form-data with a 'file' field, application/json with 'image' (base64) or "
    "'pixels' (28x28), or a raw image/* body"
)


@dataclass(frozen=True)
class RequestInput:
    """Exactly one of `image` (encoded bytes, not empty) and `pixels` (float32 (28, 28) in [0, 1])."""

    image: bytes | None = None
    pixels: np.ndarray | None = None
    filename: str | None = None
    include_image: bool | None = None  # from a JSON body; None when the body did not say


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_image_type(media: str) -> bool:
    return media.startswith("image/") or media == "application/octet-stream"


def _non_empty(data: bytes, what: str) -> bytes:
    if not data:
        raise ApiError(422, f"{what} is empty (0 bytes): send the bytes of a PNG, JPEG, BMP, GIF, TIFF or WebP image")
    return data


async def parse_request(request: Request, limits: ServeLimits) -> RequestInput:
    media = _media_type(request.headers.get("content-type", ""))
    if media == "multipart/form-data":
        return await _from_multipart(request, limits)
    if media == "application/json" or media.endswith("+json"):
        return parse_json(await read_body(request, limits.max_bytes, limits.body_timeout))
    if _is_image_type(media):
        body = await read_body(request, limits.max_bytes, limits.body_timeout)
        return RequestInput(image=_non_empty(body, "the request body"))
    if not media:
        raise ApiError(415, f"the request has no Content-Type: {_ACCEPTED}")
    raise ApiError(415, f"Content-Type {media!r} is not supported: {_ACCEPTED}")


async def _from_multipart(request: Request, limits: ServeLimits) -> RequestInput:
    body = await read_body(request, limits.max_bytes, limits.body_timeout)

    async def chunks():
        yield body
        yield b""

    parser = MultiPartParser(request.headers, chunks(), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(422, f"malformed multipart body ({exc}): send one file field named 'file'") from None
    try:
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise ApiError(422, "the multipart body has no file: send the image in a file field named 'file'")
        upload = form.get("file") if isinstance(form.get("file"), UploadFile) else uploads[0]
        part_type = _media_type(upload.content_type or "application/octet-stream")
        if not _is_image_type(part_type):
            raise ApiError(
                415, f"the uploaded file {upload.filename!r} is {part_type}, not an image: "
                "upload a PNG, JPEG, BMP, GIF, TIFF or WebP image"
            )
        data = await upload.read()
        return RequestInput(image=_non_empty(data, f"the uploaded file {upload.filename!r}"), filename=upload.filename)
    finally:
        await form.close()


def parse_json(body: bytes) -> RequestInput:
    """Validate a JSON body; the pixel array is checked for shape before it is converted."""
    try:
        data = from_json(body)  # NaN / Infinity parse here, and are refused in pixels_array
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise ApiError(422, f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(422, f"the JSON body must be an object, not {_json_type(data)}: {_ACCEPTED}")
    unknown = sorted(set(data) - _JSON_KEYS)
    if unknown:
        raise ApiError(422, f"unknown field(s) {', '.join(unknown)}: the JSON fields are image, pixels and include_image")
    include = data.get("include_image")
    if include is not None and not isinstance(include, bool):
        raise ApiError(422, f"include_image must be true or false, not {_json_type(include)}")
    has_image, has_pixels = data.get("image") is not None, data.get("pixels") is not None
    if has_image == has_pixels:
        raise ApiError(422, "give exactly one of 'image' (a base64 image) and 'pixels' (a 28x28 array)")
    if has_image:
        return RequestInput(image=decode_base64(data["image"]), include_image=include)
    return RequestInput(pixels=pixels_array(data["pixels"]), include_image=include)


def decode_base64(value: object) -> bytes:
    """Bytes of a base64 string, with or without a `data:image/...;base64,` prefix."""
    if not isinstance(value, str):
        raise ApiError(422, f"image must be a base64 string, not {_json_type(value)}")
    text = value.strip()
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header:
            raise ApiError(422, "image is a data: URL without ';base64,': send the image base64-encoded")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, f"image is not valid base64 ({exc}): encode the file's bytes with base64") from None
    return _non_empty(data, "the decoded image")


def pixels_array(value: object) -> np.ndarray:
    """float32 (28, 28) in [0, 1] from nested lists, or ApiError(422) naming what is wrong."""
    # Check the outer shape first so a huge array is refused without converting it.
    if not isinstance(value, list) or len(value) != 28 or not all(isinstance(r, list) and len(r) == 28 for r in value):
        raise ApiError(422, f"pixels must be 28 rows of 28 numbers, got {_shape_text(value)}")
    try:
        arr = np.array(value)
    except ValueError:
        raise ApiError(422, "pixels must be 28 rows of 28 numbers, got nested lists inside the rows") from None
    if arr.shape != (28, 28) or arr.dtype.kind not in "iuf":
        raise ApiError(422, "pixels must hold only numbers (no strings, booleans, null or lists)")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ApiError(422, "pixels must be finite numbers: found NaN or Infinity")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ApiError(
            422, f"pixel values must lie in [0, 1] (0 = background, 1 = ink), found {lo:g}..{hi:g}; "
            "divide 0-255 grey levels by 255"
        )
    return arr


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shape_text(value: object) -> str:
    if not isinstance(value, list):
        return _json_type(value)
    rows = len(value)
    widths = sorted({len(r) for r in value if isinstance(r, list)})
    if not widths:
        return f"{rows} non-array rows" if rows else "an empty array"
    shown = ", ".join(str(w) for w in widths[:4]) + (", ..." if len(widths) > 4 else "")
    return f"{rows} {'row' if rows == 1 else 'rows'} of {shown} {'value' if widths == [1] else 'values'}"
