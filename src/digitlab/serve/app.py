"""The HTTP API and the draw-a-digit page (FastAPI).

    app = create_app()                        # the shipped model, loaded once by the lifespan
    app = create_app(model="runs/cnn")        # a run folder or a .safetensors / .onnx file
    app = create_app(recognizer=rec)          # an already loaded Recognizer (tests, notebooks)

Endpoints: GET / (the page), POST /api/predict, POST /api/read, GET /api/health, GET /api/model,
GET /docs (Swagger UI, served from the installed swagger-ui-bundle so it works offline; from the CDN
only if that package is missing) and GET /openapi.json. Every error is `{"error": ..., "detail": ...}`.

Inference is blocking (torch or ONNX Runtime, both release the GIL), so it never runs on the event
loop: images are decoded, preprocessed and recognised in the threadpool; 28x28 arrays go to one
inference thread that batches concurrent requests (batcher.py). The model is shared read-only.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from digitlab import __version__
from digitlab.errors import ConfigError
from digitlab.serve import schemas, service
from digitlab.serve.batcher import Batcher
from digitlab.serve.errors import ApiError, install_error_handlers
from digitlab.serve.inputs import parse_request
from digitlab.serve.limits import ServeLimits
from digitlab.serve.settings import (
    DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_CONFIDENCE, ServeSettings,
)

log = logging.getLogger("digitlab.serve")
STATIC_DIR = Path(__file__).resolve().parent / "static"

_IMAGE_QUERY = Query(False, description="also return the preprocessed 28x28 image(s) as base64 PNG")


def create_app(
    recognizer=None,
    model: str | os.PathLike | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_confidence: float | None = DEFAULT_MIN_CONFIDENCE,
    runtime: str = "torch",
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> FastAPI:
    """Build the app.

    recognizer: an already loaded Recognizer (it keeps its own confidence threshold), or None: then
      `model` (a run folder or model file; None = the shipped model) is loaded once, at startup, by the
      lifespan, with `runtime` and `min_confidence`.
    max_bytes: largest request body (413 above); max_pixels: largest image, from its header (413 above);
    body_timeout: seconds a client has to send its body (408 after).
    """
    limits = ServeLimits(max_bytes=max_bytes, max_pixels=max_pixels, body_timeout=body_timeout)
    if min_confidence is not None and not 0.0 <= float(min_confidence) <= 1.0:
        raise ConfigError(f"min_confidence must lie in [0, 1], got {min_confidence!r}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.recognizer is None:
            rec = await run_in_threadpool(
                service.load_recognizer, model, runtime=runtime, min_confidence=min_confidence,
                max_pixels=max_pixels,
            )
            _attach(app, rec)
        yield
        if app.state.batcher is not None:
            app.state.batcher.close()
            app.state.batcher = None

    app = FastAPI(
        title="digitlab",
        version=__version__,
        summary="Handwritten digit recognition: one digit (/api/predict) or a whole number (/api/read).",
        lifespan=lifespan,
        docs_url=None,      # served below, from local files when available
        redoc_url=None,     # ReDoc only exists on a CDN
    )
    app.state.limits = limits
    app.state.min_confidence = None if min_confidence is None else float(min_confidence)
    app.state.recognizer = None
    app.state.batcher = None
    if recognizer is not None:
        _attach(app, recognizer)
    install_error_handlers(app)
    _add_pages(app)
    _add_api(app)
    return app


def _attach(app: FastAPI, recognizer) -> None:
    app.state.recognizer = recognizer
    info = service.model_info(recognizer, app.state.min_confidence)
    app.state.model_info = {**info, "limits": {"max_bytes": app.state.limits.max_bytes,
                                               "max_pixels": app.state.limits.max_pixels}}
    # Precomputed: the health check is polled often and must cost nothing.
    app.state.health = {"status": "ok", "model": info.get("name"), "architecture": info.get("architecture"),
                        "metrics": info.get("metrics", {}), "digitlab_version": __version__}


def _batcher(app: FastAPI) -> Batcher:
    # Created on first use, in the event loop's thread; closed by the lifespan's shutdown.
    if app.state.batcher is None:
        app.state.batcher = Batcher(app.state.recognizer.predict_batch28)
    return app.state.batcher


def _recognizer(request: Request):
    rec = request.app.state.recognizer
    if rec is None:
        raise ApiError(503, "the model is still loading: try again in a moment")
    return rec


def _add_api(app: FastAPI) -> None:
    body_doc = {"requestBody": schemas.request_body_openapi()}

    @app.get("/api/health", response_model=schemas.Health, tags=["service"])
    async def health(request: Request):
        """Liveness and the model served: name, metrics, version."""
        if request.app.state.recognizer is None:
            raise ApiError(503, "the model is still loading: try again in a moment")
        return JSONResponse(request.app.state.health)

    @app.get("/api/model", response_model=schemas.ModelInfo, tags=["service"])
    async def model_info(request: Request):
        """Everything known about the model: name, architecture, metrics, versions, limits."""
        _recognizer(request)
        return JSONResponse(request.app.state.model_info)

    @app.post(
        "/api/predict", tags=["recognition"], openapi_extra=body_doc,
        responses={200: {"model": schemas.PredictionOut}, **schemas.ERROR_RESPONSES},
    )
    async def predict(request: Request, image: bool = _IMAGE_QUERY):
        """Recognise one digit. Body: a multipart `file`, JSON `{"image": base64}` or
        `{"pixels": 28x28 in [0, 1]}` (used as the model's input directly, no decoding), or a raw
        image/* body. `unsure` is true when the top probability is under the model's threshold;
        `digit` is null when the image holds no digit."""
        rec = _recognizer(request)
        state = request.app.state
        item = await parse_request(request, state.limits)
        include = image if item.include_image is None else item.include_image
        if item.pixels is not None:
            # The fast path: no decoding or preprocessing; concurrent arrays share one model call.
            probs = None if service.is_blank(item.pixels) else await _batcher(request.app).predict(item.pixels)
            out = service.pixels_result(item.pixels, probs, include, state.model_info["min_confidence"],
                                        getattr(rec, "temperature", 1.0))
        else:
            out = await run_in_threadpool(service.predict_image, rec, item.image, item.filename, include, state.limits)
        return JSONResponse(out)

    @app.post(
        "/api/read", tags=["recognition"], openapi_extra=body_doc,
        responses={200: {"model": schemas.ReadingOut}, **schemas.ERROR_RESPONSES},
    )
    async def read(request: Request, image: bool = _IMAGE_QUERY):
        """Read a multi-digit number (e.g. `2026`) from an image: each digit with its confidence and
        its box (x0, y0, x1, y1) in input pixels, left to right."""
        rec = _recognizer(request)
        state = request.app.state
        item = await parse_request(request, state.limits)
        if item.pixels is not None:
            raise ApiError(422, "'pixels' holds a single 28x28 digit: /api/read needs an image of the number "
                                "(multipart 'file', JSON 'image', or a raw image/* body)")
        include = image if item.include_image is None else item.include_image
        out = await run_in_threadpool(service.read_image, rec, item.image, item.filename, include, state.limits)
        return JSONResponse(out)


def _add_pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    assets = _swagger_assets()
    if assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
        urls = {"swagger_js_url": "/docs-assets/swagger-ui-bundle.js",
                "swagger_css_url": "/docs-assets/swagger-ui.css",
                "swagger_favicon_url": "/docs-assets/favicon-32x32.png"}
    else:
        log.info("swagger-ui-bundle is not installed: /docs loads Swagger UI from a CDN")
        urls = {}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="digitlab API", **urls)


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the swagger-ui-bundle package (the `serve` extra), if installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path  # lazy: optional, /docs falls back to the CDN without it
    except ImportError:
        return None
    path = Path(swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def apply_threads(threads: int) -> None:
    """Few torch threads per process: requests already run in parallel threads, so intra-op threads
    would only fight over the cores."""
    torch.set_num_threads(threads)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` worker processes (`digitlab serve --workers N`): the CLI puts
    its options in DIGITLAB_SERVE_* variables, which every worker reads."""
    settings = ServeSettings.from_env()
    apply_threads(settings.threads)
    return create_app(model=settings.model, max_bytes=settings.max_bytes, max_pixels=settings.max_pixels,
                      min_confidence=settings.min_confidence, runtime=settings.runtime,
                      body_timeout=settings.body_timeout)
