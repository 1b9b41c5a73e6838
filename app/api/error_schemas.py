"""What the OpenAPI spec says about errors: the two error shapes the service answers in
(app/api/error_handlers.py renders them) and, per API family, the statuses it may send, so
that the spec documents every response a client can get."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

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
    503: "The queue is full or the engine cannot take work now (see Retry-After)",
}


def openai_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": OpenAIError, "description": _WHY[s]} for s in statuses}


def detail_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": DetailError, "description": _WHY[s]} for s in statuses}


def text_content(*media_types: str) -> dict[str, Any]:
    """A 200 whose body may also be one of these text formats (besides JSON)."""
    return {t: {"schema": {"type": "string"}} for t in media_types}


def transcript_content() -> dict[str, Any]:
    """The 200 of a route that answers in any writer's format (app/writers.py)."""
    types = dict.fromkeys(w.media_type.split(";")[0] for w in WRITERS.values())
    return {"content": text_content(*types)}


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
