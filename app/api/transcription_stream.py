"""`stream=true` on /v1/audio/transcriptions and translations, as OpenAI streams them:
server-sent events `transcript.text.delta` as each window is decoded, then (with
`diarized_json`) one `transcript.text.segment` per speaker-labelled segment, then
`transcript.text.done` with the whole text and `usage`. The deltas join into exactly the
done event's text. Nothing is sent until the first event is ready, so a failure before
any text (a bad field, an upload that does not decode) is an ordinary 4xx answer; a failure
after the stream has begun is an event carrying OpenAI's `error` object (the SDK raises it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi.responses import Response

from app.api.error_handlers import error_response
from app.api.openai_schemas import diarized, usage_of
from app.api.sse import event, event_stream
from app.domain import Transcript
from app.errors import ServiceError, status_for
from app.pipeline.asr import TextSink
from app.run.transcriber import text_as_decoded

log = logging.getLogger(__name__)

STREAM_FORMATS = ("json", "text", "diarized_json")
Transcribe = Callable[[TextSink], Coroutine[Any, Any, Transcript]]


class _Deltas:
    """Text pieces -> deltas whose concatenation is the stripped whole (Transcript.text):
    leading space dropped once, trailing space held back until more text follows."""

    def __init__(self) -> None:
        self._started = False
        self._held = ""

    def __call__(self, piece: str) -> str:
        if not self._started:
            piece = piece.lstrip()
            self._started = bool(piece)
        text = self._held + piece
        kept = text.rstrip()
        self._held = text[len(kept) :]
        return kept


async def transcription_events(
    transcribe: Transcribe,
    resources: AsyncExitStack,
    fmt: str,
    known_names: list[str],
) -> AsyncGenerator[bytes]:
    """Run `transcribe(on_text)` and stream its text; `resources` (the saved upload) are
    released when the stream ends, however it ends."""
    decoded = text_as_decoded(transcribe)
    deltas = _Deltas()
    try:
        async for kind, value in decoded:
            if kind == "done":
                transcript: Transcript = value
            elif delta := deltas("".join(s.text for s in value)):
                yield event({"type": "transcript.text.delta", "delta": delta})
        if fmt == "diarized_json":
            for segment in diarized(transcript, known_names).segments:
                yield event(segment.model_dump())
        done = {"type": "transcript.text.done", "text": transcript.text}
        yield event({**done, "usage": usage_of(transcript).model_dump()})
    except ServiceError as exc:
        yield event(
            {
                "error": {
                    "message": exc.message,
                    "type": exc.error_type,
                    "param": exc.param,
                    "code": exc.code,
                    "status": status_for(exc),
                }
            }
        )
    except Exception:
        log.exception("streamed transcription failed")
        message = "Internal server error; the log has the details."
        yield event({"error": {"message": message, "type": "server_error", "code": None}})
    finally:
        await decoded.aclose()  # the client went away: stop waiting for the work
        await resources.aclose()


async def stream_response(path: str, events: AsyncGenerator[bytes]) -> Response:
    """The events as a text/event-stream, or, when the very first one is an error, that
    error as the endpoint's ordinary JSON answer with its status code."""
    first = await anext(events, b"")
    body = json.loads(first.removeprefix(b"data: ")) if first else {}
    if "error" in body:
        await events.aclose()  # releases the upload
        error = body["error"]
        return error_response(
            path,
            error.get("status", 500),
            error["message"],
            param=error.get("param"),
            code=error.get("code"),
            error_type=error.get("type"),
        )

    async def replay() -> AsyncIterator[bytes]:
        yield first
        async for chunk in events:
            yield chunk

    return event_stream(replay())
