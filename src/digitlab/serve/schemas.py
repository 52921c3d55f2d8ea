"""Pydantic models that document the API in /openapi.json.

The handlers read the body themselves (to enforce the byte limit while reading) and return plain JSON,
so these models describe the wire format for the docs and clients; they are not run per request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictJSON(BaseModel):
    """JSON body: exactly one of `image` and `pixels`."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(None, description="base64-encoded image file (PNG, JPEG, BMP, GIF, TIFF, WebP); "
                                                "a data:image/...;base64, URL is accepted")
    pixels: list[list[float]] | None = Field(
        None, description="28 rows of 28 values in [0, 1] (0 = background, 1 = ink), MNIST layout: used as the "
                          "model's input directly, with no decoding or preprocessing (predict only)")
    include_image: bool | None = Field(None, description="return the preprocessed 28x28 image(s); "
                                                         "overrides ?image=")


class PredictionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str | None = Field(None, description="uploaded file name, if any")
    digit: int | None = Field(description="the digit, or null when the image holds no digit")
    confidence: float = Field(description="top probability, 0..1 (0 when no digit)")
    probabilities: list[float] = Field(description="probability of each class 0..9 (empty when no digit)")
    unsure: bool = Field(description="true when confidence is under the server's min_confidence")
    image: str | None = Field(None, description="what the model saw: 28x28 greyscale PNG, base64 "
                                                "(only with ?image=true)")
    note: str | None = Field(None, description="e.g. 'animated GIF: used the first frame'")
    error: str | None = None
    top: list[dict[str, float]] = Field([], description="the three most probable digits, most probable first")


class DigitOut(PredictionOut):
    box: list[int] = Field(description="(x0, y0, x1, y1) of this digit in input pixels")


class ReadingOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str | None = None
    number: str = Field(description="the digits read left to right, e.g. '2026' ('' when none)")
    digits: list[DigitOut] = Field(description="one per digit, left to right")
    confidence: float = Field(description="product of the digits' confidences")
    unsure: bool = Field(description="true when any digit is unsure, or none was found")


class Health(BaseModel):
    status: str = Field(description="'ok' once the model is loaded")
    model: str | None = Field(description="the model's name (its folder or file name)")
    architecture: str | None = None
    metrics: dict[str, Any]
    digitlab_version: str


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    metrics: dict[str, Any] = {}
    digitlab_version: str | None = None
    min_confidence: float
    limits: dict[str, int]


class ErrorOut(BaseModel):
    error: str = Field(description="short kind, e.g. 'payload too large'")
    detail: str = Field(description="one line: what is wrong and how to fix it")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {"model": ErrorOut, "description": "the body did not arrive within the server's --body-timeout"},
    413: {"model": ErrorOut, "description": "body over max_bytes, or image over max_pixels"},
    415: {"model": ErrorOut, "description": "not multipart, JSON or image/*; or the upload is not an image"},
    422: {"model": ErrorOut, "description": "undecodable, empty or malformed input"},
}


def request_body_openapi() -> dict[str, Any]:
    """The three accepted bodies, for the `requestBody` of /api/predict and /api/read."""
    binary = {"type": "string", "format": "binary"}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": binary}, "required": ["file"]},
            },
            "application/json": {"schema": _json_body_schema()},
            "image/png": {"schema": binary},
            "image/jpeg": {"schema": binary},
        },
    }


def _json_body_schema() -> dict[str, Any]:
    """PredictJSON's fields as the server checks them: exactly one of `image` and `pixels` (the other
    absent or null), `pixels` exactly 28 x 28 numbers in [0, 1], `include_image` true, false or null
    (null: as ?image= says). Precise, so that generated clients and fuzzers know the rules."""
    fields = PredictJSON.model_json_schema()["properties"]
    include = {"type": ["boolean", "null"], "description": fields["include_image"]["description"]}
    row = {"type": "array", "minItems": 28, "maxItems": 28, "items": {"type": "number", "minimum": 0, "maximum": 1}}
    pixels = {"type": "array", "minItems": 28, "maxItems": 28, "items": row,
              "description": fields["pixels"]["description"]}
    image = {"type": "string", "minLength": 1, "description": fields["image"]["description"]}
    absent = {"type": "null"}
    return {
        "title": "PredictJSON",
        "oneOf": [
            {"type": "object", "properties": {"image": image, "pixels": absent, "include_image": include},
             "required": ["image"], "additionalProperties": False},
            {"type": "object", "properties": {"pixels": pixels, "image": absent, "include_image": include},
             "required": ["pixels"], "additionalProperties": False},
        ],
    }
