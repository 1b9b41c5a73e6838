"""A transcription as every endpoint and the job worker run it: the model is resolved (and
downloaded) before the admission permit is taken, the model work runs under the permit,
and speaker labelling runs after it is handed back. Blocking work runs in worker threads,
so the event loop keeps serving health checks and other clients."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from app.domain import LanguageGuess, Progress, Segment, Transcript, TranscriptionRequest
from app.metrics import Metrics
from app.models.eviction import IdleEvictor
from app.pipeline.asr import TextSink
from app.pipeline.runner import Pipeline
from app.run.admission import Admission
from app.run.owned import StopToken, run_owned

Disconnected = Callable[[], Awaitable[bool]]


def _no_progress(stage: str, fraction: float) -> None:
    return None


async def text_as_decoded(
    transcribe: Callable[[TextSink], Coroutine[Any, Any, Transcript]],
) -> AsyncGenerator[tuple[str, Any]]:
    """Run `transcribe(on_text)` and yield ("text", segments) for each window as it is
    decoded (on_text is called from worker threads), then ("done", transcript); the
    transcription's error, if any, is raised here. Closing the generator early (the client
    went away) cancels the run."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[tuple[Segment, ...] | None] = asyncio.Queue()

    def on_text(segments: tuple[Segment, ...]) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, segments)

    task = asyncio.create_task(transcribe(on_text))
    task.add_done_callback(lambda _: pieces.put_nowait(None))
    try:
        while (segments := await pieces.get()) is not None:
            yield ("text", segments)
        yield ("done", task.result())
    finally:
        if not task.done():
            task.cancel()


async def _remove(work: Path) -> None:
    """Remove a work folder, even when the task is cancelled while it waits for that: a
    cancelled to_thread job that has not started never runs (a streaming client that hung
    up just as its transcription ended left its decoded audio behind: 3 of 10 in a soak)."""
    await asyncio.shield(asyncio.to_thread(shutil.rmtree, work, True))


class Transcriber:
    def __init__(
        self,
        pipeline: Pipeline,
        admission: Admission,
        metrics: Metrics,
        evictor: IdleEvictor,
        work_root: Path,
    ) -> None:
        self.pipeline = pipeline
        self.admission = admission
        self.metrics = metrics
        self.evictor = evictor
        self.work_root = work_root

    async def preload(self, model: str) -> None:
        """Load a model (and the diarization pipeline, on by default) at start-up, so the
        first request does not wait for them."""
        pipeline = self.pipeline

        def load() -> None:
            ref = pipeline.prepare(TranscriptionRequest(model=model))
            with pipeline.whisper(ref):
                pass
            pipeline.preload_diarization()

        await asyncio.to_thread(load)

    def _work_dir(self) -> Path:
        self.work_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="work-", dir=self.work_root))

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
        """`queue_limit=False` for jobs: they wait in the job store, not in the HTTP queue.
        `on_text` (called from a worker thread) gets each window's segments as decoded."""
        # The upload's cheap checks (empty, unreadable, longer than MAX_AUDIO_DURATION_S)
        # ran where it was accepted, before this: request_upload for the routes,
        # JobService.submit for jobs (app/jobs/usage.py, with the daily allowance).
        ref = await asyncio.to_thread(self.pipeline.prepare, request)
        self.metrics.audio_size.observe(path.stat().st_size / 1048576)
        work = self._work_dir()
        try:
            async with self.admission.slot(disconnected, queue_limit=queue_limit) as waited:
                self.metrics.queue_wait.observe(waited)
                await asyncio.to_thread(self.evictor.sweep)  # idle models past keep-alive
                # The permit and the work folder are released only after the model thread
                # has returned, even when this task is cancelled (app/run/owned.py).
                token = StopToken()
                checked = token.checked(progress)
                output = await run_owned(
                    lambda: self.pipeline.run_models(ref, path, work, request, checked, on_text),
                    token,
                    disconnected,
                )
        finally:
            await _remove(work)
        return await asyncio.to_thread(self.pipeline.finish, output, request)

    async def detect_language(
        self,
        path: Path,
        *,
        model: str | None,
        encoded: bool = True,
        disconnected: Disconnected | None = None,
    ) -> LanguageGuess:
        ref = await asyncio.to_thread(self.pipeline.prepare, TranscriptionRequest(model=model))
        work = self._work_dir()
        try:
            async with self.admission.slot(disconnected) as waited:
                self.metrics.queue_wait.observe(waited)
                return await asyncio.to_thread(
                    self.pipeline.detect_language, ref, path, work, encoded
                )
        finally:
            await _remove(work)
