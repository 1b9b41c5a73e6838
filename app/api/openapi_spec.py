"""What the OpenAPI spec says beyond the routes' signatures: the two error shapes the service
answers in (app/api/error_handlers.py renders them) and, per API family, the statuses it may
send; the real content types of answers and of uploaded files; links between job operations.
So that the spec documents every response a client can get (schemathesis checks it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.writers import WRITERS


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """Errors under /v1, as OpenAI sends them (with `x-should-retry`)."""

    error: OpenAIErrorBody


class DetailError(BaseModel):
    """Errors elsewhere, in FastAPI's (and whisper-asr-webservice's) shape."""

    detail: str


_WHY = {
    400: "The request is invalid: a field, the upload (not audio, empty, truncated), a model",
    401: "An API key is required or was wrong (only when API_KEYS is set)",
    404: "No such job or model",
    409: "The job is not in a state that allows this (e.g. no result yet)",
    413: "The upload or its audio is longer than this server accepts",
    415: "The body is not multipart/form-data (uploads are sent as a form)",
    429: "A per-key limit was reached: jobs queued, requests in flight or audio hours per "
    "day (see Retry-After)",
    503: "The queue is full or the engine cannot take work now (see Retry-After)",
}


def openai_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": OpenAIError, "description": _WHY[s]} for s in statuses}


def detail_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": DetailError, "description": _WHY[s]} for s in statuses}


def text_content(*media_types: str) -> dict[str, Any]:
    """A 200 whose body may also be one of these text formats (besides JSON)."""
    return {t: {"schema": {"type": "string"}} for t in media_types}


def transcript_content(json_model: Any, *extra_types: str) -> dict[str, Any]:
    """The 200 of a route that answers in any writer's format (app/writers.py): JSON as
    `json_model` (a pydantic model or a union of them), the others as text."""
    types = dict.fromkeys(w.media_type.split(";")[0] for w in WRITERS.values())
    types.pop("application/json", None)
    return {"model": json_model, "content": text_content(*types, *extra_types)}


def with_models(schema: dict[str, Any], models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """Add models that no route signature names (those inside server-sent events) to the
    spec's components, where the event schemas refer to them."""
    refs = "#/components/schemas/{model}"
    _, document = models_json_schema([(m, "serialization") for m in models], ref_template=refs)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model_schema in document.get("$defs", {}).items():
        components.setdefault(name, model_schema)
    return schema


def without_validation_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 on every route with parameters; this service answers
    validation failures with 400 in the family's shape, so the 422s are taken out."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


UPLOAD_MEDIA_TYPES = "audio/*, video/*, application/octet-stream"
"""What an upload's file part may be: anything FFmpeg decodes (the part's own type is not
read; the bytes are probed)."""


def upload_body(field: str) -> dict[str, Any]:
    """openapi_extra of an upload route: the file part's media types."""
    encoding = {field: {"contentType": UPLOAD_MEDIA_TYPES}}
    return {"requestBody": {"content": {"multipart/form-data": {"encoding": encoding}}}}


def json_query_parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra declaring a query parameter whose value is JSON (OpenAPI's `content`)."""
    parameter = {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    return {"parameters": [parameter]}
