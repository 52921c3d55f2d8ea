"""One error shape for every HTTP error: ``{"error": "<short kind>", "detail": "<one line>"}``.

`detail` names the problem and, where there is one, the fix. FastAPI's own errors (404, 405, query
validation) are rewritten into the same shape, and anything unexpected becomes a 500 in that shape too
(logged with its traceback), so a client only ever has to parse one thing.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from digitlab.errors import DigitlabError, ImageError

log = logging.getLogger("digitlab.serve")

# Short, stable `error` values per status code; `detail` carries the specifics.
_KINDS = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    408: "request timeout",
    413: "payload too large",
    415: "unsupported media type",
    422: "unprocessable input",
    500: "internal error",
    503: "not ready",
}


class ApiError(Exception):
    """An error the API answers with `status` and a one-line `detail`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": _KINDS.get(status, "error"), "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return _one_line("; ".join(parts) or "invalid request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.headers)

    @app.exception_handler(ImageError)
    async def _image_error(request: Request, exc: ImageError) -> JSONResponse:
        return error_response(422, _one_line(exc))

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(request: Request, exc: DigitlabError) -> JSONResponse:
        # Any other project error raised while handling input is the input's fault, never a 500.
        return error_response(422, _one_line(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            detail = f"no such page or endpoint: {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        else:
            detail = _one_line(exc.detail)
        return error_response(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"unexpected server error ({type(exc).__name__}); it has been logged")
