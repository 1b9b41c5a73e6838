"""The ingress's Transcriber in ray mode: the same calls as app/run/transcriber.py, run by
a transcription replica through a Ray Serve deployment handle (which picks the less loaded
of two replicas). Requests and transcripts cross as the domain objects themselves.

A replica that dies while it holds a request (killed, out of memory, its node lost) costs the
client nothing: the upload is on storage every replica reads, so the call is made again, on
another replica, up to RETRIES times. A service error raised in the replica (bad model, queue
full, undecodable audio) reaches the router as that same error. `disconnected` is not polled:
when a client goes away, Serve's proxy cancels its request and the handle calls it made (a
transcription still queued in its replica never runs)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from app.domain import LanguageGuess, Progress, Transcript, TranscriptionRequest
from app.errors import ServiceError
from app.metrics import Metrics
from app.pipeline.asr import TextSink
from app.run.transcriber import Disconnected

log = logging.getLogger(__name__)

RETRIES = 2
_REPLICA_LOST = (ActorDiedError, ActorUnavailableError, RayActorError)
T = TypeVar("T")


def _no_progress(stage: str, fraction: float) -> None:
    return None


class RemoteTranscriber:
    def __init__(self, handle: Any, metrics: Metrics | None = None) -> None:
        self._handle = handle
        self._metrics = metrics

    async def _call(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        for tries in range(RETRIES + 1):
            try:
                return await attempt()
            except RayTaskError as exc:  # raised in the replica: the service's own error
                cause = getattr(exc, "cause", None)
                if isinstance(cause, ServiceError):
                    raise cause from None
                raise
            except _REPLICA_LOST as exc:
                if tries == RETRIES:
                    raise
                log.warning(
                    "%s: its replica was lost (%s); trying another", what, type(exc).__name__
                )
                if self._metrics is not None:
                    self._metrics.replica_retries.labels(call=what).inc()
        raise AssertionError("unreachable")

    async def transcribe(
        self,
        path: Path,
        request: TranscriptionRequest,
        *,
        disconnected: Disconnected | None = None,
        progress: Progress = _no_progress,
        queue_limit: bool = True,
        on_text: TextSink | None = None,
    ) -> Transcript:
        if on_text is None:

            async def once() -> Transcript:
                result: Transcript = await self._handle.transcribe.remote(
                    str(path), request, queue_limit
                )
                return result

            return await self._call("transcription", once)
        sink = on_text

        async def streamed() -> Transcript:
            # A retry after the first text would repeat it: only a replica lost before any
            # text was sent is retried (_Once raises the loss as a plain error after that).
            return await _Once(sink).run(
                self._handle.options(stream=True).transcribe_stream.remote(str(path), request)
            )

        return await self._call("streamed transcription", streamed)

    async def detect_language(
        self,
        path: Path,
        *,
        model: str | None,
        encoded: bool = True,
        disconnected: Disconnected | None = None,
    ) -> LanguageGuess:
        async def once() -> LanguageGuess:
            guess: LanguageGuess = await self._handle.detect_language.remote(
                str(path), model, encoded
            )
            return guess

        return await self._call("language detection", once)


class _Once:
    """Feeds a replica's stream of ("text", segments) items to the sink and returns its
    closing ("done", transcript)."""

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink
        self._sent = False

    async def run(self, stream: AsyncIterator[tuple[str, Any]]) -> Transcript:
        try:
            async for kind, value in stream:
                if kind == "text":
                    self._sent = True
                    self._sink(value)
                else:
                    transcript: Transcript = value
                    return transcript
        except _REPLICA_LOST as exc:
            if self._sent:
                raise ServiceError("The replica streaming this transcription was lost.") from exc
            raise
        raise ServiceError("The transcription stream ended without a transcript.")
