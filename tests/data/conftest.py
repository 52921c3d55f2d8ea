"""Fixtures for the data-layer tests: tiny IDX datasets written to tmp folders, specs whose checksums
match them, and a real HTTP server on 127.0.0.1 serving them as mirrors.

Every test here runs with its own empty cache ($DIGITLAB_CACHE_DIR) and without $DIGITLAB_DATA_DIR,
so no test can read the user's data or download from the internet by accident.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from datalayer_helpers import write_tiny_folder

from digitlab.data import sources
from digitlab.data.sources import DatasetSpec


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DIGITLAB_CACHE_DIR", str(cache))
    monkeypatch.delenv("DIGITLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return cache


@pytest.fixture
def tiny_folder(tmp_path):
    folder = tmp_path / "tiny"
    arrays = write_tiny_folder(folder)
    return folder, arrays


@pytest.fixture
def register_spec(monkeypatch):
    """Register a spec in DATASETS for this test only, so get_spec()/load_dataset() find it by name."""

    def register(spec: DatasetSpec) -> DatasetSpec:
        monkeypatch.setitem(sources.DATASETS, spec.name, spec)
        return spec

    return register


class _MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the server's folder; /flaky/X answers 503 on its first request, then serves /good/X;
    /slow/X waits `slow_seconds` before answering."""

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path.startswith("/flaky/"):
            if self.server.hits.count(self.path) == 1:
                self.send_error(503, "Service Unavailable")
                return
            self.path = "/good/" + self.path[len("/flaky/"):]
        if self.path.startswith("/slow/"):
            time.sleep(self.server.slow_seconds)
            self.path = "/good/" + self.path[len("/slow/"):]
        super().do_GET()


@pytest.fixture
def mirror_server(tmp_path):
    """A real HTTP server on 127.0.0.1 over tmp_path/"www"; yields (root folder, base URL, server)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_MirrorHandler, directory=str(root)))
    server.hits = []
    server.slow_seconds = 2.0
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"
