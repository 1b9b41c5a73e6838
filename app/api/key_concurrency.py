"""MAX_CONCURRENT_REQUESTS_PER_KEY: transcription requests one API key may have in flight.

An ASGI middleware inside the key check (it reads the caller the check found) and outside
the routes, so one request too many is a 429 before its upload is read, and a request
counts until the last byte of its answer (a streamed transcription included). Counted per
server process: ray mode's ingress replicas each count their own.
"""

from __future__ import annotations

import logging
from collections import Counter

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import tenant_of
from app.api.error_handlers import error_response

log = logging.getLogger(__name__)

HEAVY_PATHS = frozenset(
    {"/asr", "/detect-language", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/jobs"}
)
"""POSTs to these do model work (or accept a job); everything else is cheap."""
RETRY_AFTER_S = 5


class KeyConcurrencyMiddleware:
    def __init__(self, app: ASGIApp, most: int) -> None:
        self.app = app
        self.most = most
        self.in_flight: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = tenant_of(scope).key_id
        if (
            not self.most
            or key is None
            or scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path", "").rstrip("/") not in HEAVY_PATHS
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight[key] >= self.most:
            log.info("%s: %d requests in flight, one more refused", key, self.in_flight[key])
            response = error_response(
                scope["path"],
                429,
                f"This API key has {self.in_flight[key]} transcription requests in flight "
                f"(MAX_CONCURRENT_REQUESTS_PER_KEY={self.most}); send more when one has "
                "finished.",
                code="rate_limit_exceeded",
                error_type="rate_limit_error",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        self.in_flight[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[key] -= 1
            if not self.in_flight[key]:
                del self.in_flight[key]
