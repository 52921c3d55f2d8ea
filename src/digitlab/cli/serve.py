"""`digitlab serve`: the HTTP API and the draw-a-digit page, under uvicorn."""

from __future__ import annotations

from digitlab.serve.settings import (
    DEFAULT_BODY_TIMEOUT, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_CONFIDENCE,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the HTTP API and the draw-a-digit page",
        description="Run the HTTP API (/api/predict, /api/read, /api/health, /api/model, /docs) and the "
                    "draw-a-digit page at / under uvicorn. Binds 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--model", default=None, metavar="RUN_OR_FILE",
                   help="run folder, .safetensors or .onnx file (default: the shipped pretrained model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes, each with its own copy of the model (default 1)")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch", help="inference runtime (default torch)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker (default 1: requests already run in parallel threads)")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help=f"largest request body in bytes, 413 above (default {DEFAULT_MAX_BYTES:,})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest image in pixels, checked before decoding, 413 above (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT, metavar="SECONDS",
                   help=f"a client that has not sent its whole body after this long gets 408 "
                        f"(default {DEFAULT_BODY_TIMEOUT:g})")
    p.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                   help="answers whose top probability is under this are flagged unsure (default: 0.95 for a model "
                        "calibrated with `digitlab calibrate`, as the shipped one is; 0.7 otherwise)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default info)")
    p.add_argument("--no-access-log", action="store_true", help="do not log every request")
    p.set_defaults(handler=run)


def _check_port_free(host: str, port: int) -> None:
    """Fail with one clear line instead of uvicorn's traceback-like log when the port is taken."""
    import socket

    from digitlab.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): "
                              "choose another --port or stop the program using it") from None


def run(args) -> int:
    import os
    import sys
    import time

    from digitlab.errors import ConfigError, require

    require("fastapi", "serve")
    uvicorn = require("uvicorn", "serve")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")

    from digitlab.serve.app import apply_threads, create_app
    from digitlab.serve.service import load_recognizer
    from digitlab.serve.settings import ServeSettings

    settings = ServeSettings(model=args.model, runtime=args.runtime, threads=args.threads,
                             max_bytes=args.max_bytes, max_pixels=args.max_pixels,
                             min_confidence=args.min_confidence, body_timeout=args.body_timeout)
    _check_port_free(args.host, args.port)
    apply_threads(settings.threads)
    # Load once here so that a bad --model is one clear error before any server starts.
    start = time.perf_counter()
    recognizer = load_recognizer(settings.model, runtime=settings.runtime, min_confidence=settings.min_confidence,
                                 max_pixels=settings.max_pixels)
    info = recognizer.info
    name = f"{info.get('architecture') or 'model'} ({info.get('name')})"
    print(f"digitlab serve: model {name} loaded in {time.perf_counter() - start:.2f} s; "
          f"page at http://{_url_host(args.host)}:{args.port}/ , API docs at /docs", file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"digitlab serve: listening on {args.host}: reachable from other machines", file=sys.stderr)

    # An idle keep-alive connection is closed after DEFAULT_KEEP_ALIVE s, a slow body after --body-timeout.
    common = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=not args.no_access_log,
                  timeout_keep_alive=DEFAULT_KEEP_ALIVE)
    if args.workers == 1:
        app = create_app(recognizer=recognizer, max_bytes=settings.max_bytes, max_pixels=settings.max_pixels,
                         min_confidence=settings.min_confidence, body_timeout=settings.body_timeout)
        uvicorn.run(app, **common)
    else:
        # uvicorn starts each worker by importing the factory; the options travel in the environment.
        del recognizer
        os.environ.update(settings.to_env())
        uvicorn.run("digitlab.serve.app:app_from_env", factory=True, workers=args.workers, **common)
    return 0


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
