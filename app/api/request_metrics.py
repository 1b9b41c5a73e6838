"""ASGI middleware: count requests and time them, labelled by endpoint and outcome."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def endpoint_label(scope: Scope) -> str:
    """The matched route's path template (`/v1/jobs/{job_id}`), read from the app's own
    routes: label values stay bounded whatever paths clients send; unmatched is `other`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


def status_label(status: int) -> str:
    if status < 400:
        return "ok"
    return f"http_{status}"


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = getattr(scope["app"].state, "metrics", None)
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        outcome = "error"
        try:
            await self.app(scope, receive, recording_send)
            outcome = status_label(status)
        finally:
            if metrics is not None:
                endpoint = endpoint_label(scope)
                metrics.requests.labels(endpoint=endpoint, status=outcome).inc()
                metrics.request_duration.labels(endpoint=endpoint).observe(
                    time.perf_counter() - started
                )
