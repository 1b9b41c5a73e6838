"""ASGI middleware: stop reading an upload as soon as it exceeds MAX_FILE_SIZE_MB (413).

FastAPI parses multipart bodies before a handler runs, so a size check in the handler would
come after the whole file had been spooled to disk. This counts bytes as they arrive and
answers 413 at once (from Content-Length when the client sends one).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.error_handlers import error_response
from app.errors import UploadTooLarge, status_for

# Room for multipart boundaries and the small form fields beside the file.
_FORM_OVERHEAD_BYTES = 1024 * 1024


class UploadLimitMiddleware:
    def __init__(self, app: ASGIApp, max_file_bytes: int) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + _FORM_OVERHEAD_BYTES

    def _too_large(self, path: str) -> JSONResponse:
        error = UploadTooLarge.over(self.max_file_bytes)
        return error_response(
            path, status_for(error), error.message, param=error.param, code=error.code
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(path)(scope, receive, send)
            return

        received = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}  # makes the form parser give up
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:  # the app's own answer to the cut-off body is replaced below
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._too_large(path)(scope, receive, send)
