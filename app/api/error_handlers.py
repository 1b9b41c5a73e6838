"""Render every error in the shape of the API family the request belongs to.

/v1/...  -> OpenAI: {"error": {"message", "type", "param", "code"}} (+ x-should-retry)
else     -> FastAPI / whisper-asr-webservice: {"detail": "..."}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from app.errors import LimitReached, QueueFull, ServiceError, is_retryable, status_for

log = logging.getLogger(__name__)

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_response(
    path: str,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    headers = dict(headers or {})
    body: dict[str, Any]
    if is_openai_path(path):
        body = {
            "error": {
                "message": message,
                "type": error_type or _OPENAI_TYPES.get(status, "server_error"),
                "param": param,
                "code": code,
            }
        }
        headers["x-should-retry"] = "true" if is_retryable(status) else "false"
    else:
        body = {"detail": message}
    return JSONResponse(body, status_code=status, headers=headers)


_PLAIN = {
    "bool_parsing": "'{param}' must be true or false, not '{input}'.",
    "int_parsing": "'{param}' must be an integer, not '{input}'.",
    "float_parsing": "'{param}' must be a number, not '{input}'.",
    "greater_than_equal": "'{param}' must be at least {ge}, not {input}.",
    "less_than_equal": "'{param}' must be at most {le}, not {input}.",
    "missing": "'{param}' is required and was not sent.",
}
"""pydantic's messages for the failures a form or query string commonly has, said plainly."""


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    msg = first.get("msg", "Invalid request")
    template = _PLAIN.get(first.get("type", ""))
    if template and param:
        values = {"param": param, "input": first.get("input"), **first.get("ctx", {})}
        return template.format(**values), param
    return (f"Invalid value for '{param}': {msg}" if param else msg), param


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method some route serves at this path: Starlette's 405 names only the first
    route whose path matched, but /v1/jobs is two routes (GET and POST)."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        status = status_for(exc)
        headers = None
        if isinstance(exc, QueueFull | LimitReached):
            headers = {"Retry-After": str(exc.retry_after_s)}
        if status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc.message)
        return error_response(
            request.url.path,
            status,
            exc.message,
            param=exc.param,
            code=exc.code,
            error_type=exc.error_type,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(request.url.path, 400, message, param=param, code="invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app, request.scope) or headers.get("Allow", "")
        return error_response(request.url.path, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request.url.path,
            500,
            "Internal server error; the log has the details.",
            code="internal_error",
            error_type="server_error",
        )
