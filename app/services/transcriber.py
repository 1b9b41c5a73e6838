"""A transcription as every endpoint and the job worker run it: the model is resolved (and
downloaded) before the admission permit is taken, the model work runs under the permit,
and speaker labelling runs after it is handed back. Blocking work runs in worker threads,
so the event loop keeps serving health checks and other clients."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.domain import LanguageGuess, Transcript
from app.metrics import Metrics
from app.pipeline.asr import TextSink
from app.pipeline.runner import Pipeline, Progress, TranscriptionRequest
from app.services.admission import Admission
from app.services.eviction import IdleEvictor

Disconnected = Callable[[], Awaitable[bool]]


def _no_progress(stage: str, fraction: float) -> None:
    return None


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
        ref = await asyncio.to_thread(self.pipeline.prepare, request)
        self.metrics.audio_size.observe(path.stat().st_size / 1048576)
        work = self._work_dir()
        try:
            async with self.admission.slot(disconnected, queue_limit=queue_limit) as waited:
                self.metrics.queue_wait.observe(waited)
                await asyncio.to_thread(self.evictor.sweep)  # idle models past keep-alive
                output = await asyncio.to_thread(
                    self.pipeline.run_models, ref, path, work, request, progress, on_text
                )
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
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
            await asyncio.to_thread(shutil.rmtree, work, True)
