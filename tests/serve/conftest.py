"""Fixtures for the API tests: the real Recognizer (the shipped model unless
$DIGITLAB_SERVE_TEST_MODEL names another) and apps built with create_app."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")

from serve_drawings import SMALL_MAX_BYTES, SMALL_MAX_PIXELS


@pytest.fixture(scope="session")
def test_model() -> str | None:
    """The model the tests serve: None (the shipped model) unless the environment names one."""
    return os.environ.get("DIGITLAB_SERVE_TEST_MODEL") or None


@pytest.fixture(scope="session")
def recognizer(test_model):
    from digitlab.inference.recognizer import Recognizer

    return Recognizer.load(test_model)


@pytest.fixture(scope="session")
def app(recognizer):
    from digitlab.serve.app import create_app

    # Small limits so the limit tests stay cheap.
    return create_app(recognizer=recognizer, max_bytes=SMALL_MAX_BYTES, max_pixels=SMALL_MAX_PIXELS)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    # raise_server_exceptions (the default) turns any unexpected server exception into a test failure.
    with TestClient(app) as c:
        yield c
