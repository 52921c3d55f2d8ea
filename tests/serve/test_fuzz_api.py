"""API fuzzing: schemathesis generates requests from the app's own OpenAPI schema (every endpoint,
valid and invalid data) and checks that none gets a 5xx and every response matches the schema.

Fixed seed (derandomized) and a bounded number of examples per endpoint, so it runs in the normal suite.
Schemathesis's "schema-valid data is accepted" check is left out: any byte string fits the schema of
an image upload, and almost none of them is an image (those get a 422 by design).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402
from serve_drawings import SMALL_MAX_BYTES, SMALL_MAX_PIXELS  # noqa: E402

from digitlab.inference.recognizer import Recognizer  # noqa: E402
from digitlab.serve.app import create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("ieee_floats")

APP = create_app(recognizer=Recognizer.load(), max_bytes=SMALL_MAX_BYTES, max_pixels=SMALL_MAX_PIXELS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
