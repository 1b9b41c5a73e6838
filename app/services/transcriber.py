"""The pipeline behind every endpoint: admission -> decode -> model -> ASR.

Routers call this with a file on disk and per-request options; all heavy work runs in
worker threads so the event loop keeps serving health checks and other clients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.alignment import Aligner
from app.pipeline.decode import decode_file
from app.diarization.assign import drop_words, label_speakers
from app.diarization.diarizer import SpeakerLimits
from app.diarization.service import DiarizationService
from app.domain import Audio, DecodeOptions, LanguageGuess, Transcript
from app.engines.base import Engine, LoadedModel
from app.errors import InvalidRequest
from app.metrics import Metrics
from app.models.registry import ModelRef, ModelRegistry
from app.services.admission import Admission
from app.services.eviction import IdleEvictor
from app.services.model_cache import ModelCache

log = logging.getLogger(__name__)

Disconnected = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class SpeakerRequest:
    """A request for speaker labels (and, optionally, one embedding per speaker)."""

    limits: SpeakerLimits = field(default_factory=SpeakerLimits)
    return_embeddings: bool = False


class Transcriber:
    def __init__(
        self,
        engine: Engine,
        registry: ModelRegistry,
        cache: ModelCache,
        admission: Admission,
        metrics: Metrics,
        evictor: IdleEvictor,
        aligner: Aligner | None = None,
        diarization: DiarizationService | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.cache = cache
        self.admission = admission
        self.metrics = metrics
        self.evictor = evictor
        self.aligner = aligner
        self.diarization = diarization

    async def resolve(self, model: str | None) -> ModelRef:
        # May probe the hub (bounded by HUB_TIMEOUT_SECONDS): keep it off the event loop.
        return await asyncio.to_thread(self.registry.resolve, model)

    async def preload(self, model: str) -> None:
        """Load a model (and the diarization pipeline, on by default) now, at start-up, so
        the first request does not wait for them."""
        ref = await self.resolve(model)

        def load() -> None:
            with self._whisper(ref):
                pass
            if self.diarization is not None:
                self.diarization.preload()

        await asyncio.to_thread(load)

    async def transcribe(
        self,
        path: Path,
        *,
        model: str | None,
        options: DecodeOptions,
        encoded: bool = True,
        disconnected: Disconnected | None = None,
        speakers: SpeakerRequest | None = None,
    ) -> Transcript:
        ref = await self.resolve(model)
        _check_options(ref.name, ref.english_only, options)
        self.metrics.audio_size.observe(path.stat().st_size / 1048576)
        async with self.admission.slot(disconnected) as waited:
            self.metrics.queue_wait.observe(waited)
            self.metrics.active.inc()
            try:
                return await asyncio.to_thread(self._run, ref, path, encoded, options, speakers)
            finally:
                self.metrics.active.dec()

    async def detect_language(
        self,
        path: Path,
        *,
        model: str | None,
        encoded: bool = True,
        disconnected: Disconnected | None = None,
    ) -> LanguageGuess:
        ref = await self.resolve(model)
        async with self.admission.slot(disconnected) as waited:
            self.metrics.queue_wait.observe(waited)
            return await asyncio.to_thread(self._detect, ref, path, encoded)

    # --- worker-thread side -------------------------------------------------------------
    def _whisper(self, ref: ModelRef) -> AbstractContextManager[LoadedModel]:
        return self.cache.use(
            f"whisper/{ref.name}",
            lambda: self.engine.load(ref.name, self.registry.materialize(ref)),
        )

    def _decode(self, path: Path, encoded: bool) -> Audio:
        audio = self._timed("decode", lambda: decode_file(path, encoded=encoded))
        self.metrics.audio_duration.observe(audio.duration_ms / 1000)
        return audio

    def _timed[T](self, stage: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.metrics.stage.labels(stage=stage).observe(time.perf_counter() - started)

    def _run(
        self,
        ref: ModelRef,
        path: Path,
        encoded: bool,
        options: DecodeOptions,
        speakers: SpeakerRequest | None,
    ) -> Transcript:
        self.evictor.sweep()  # other models idle past their keep-alive go first
        audio = self._decode(path, encoded)
        # Speaker turns are put on words, so diarization needs word times even when the
        # client did not ask for them (they are dropped again before answering).
        asr_options = replace(options, word_timestamps=True) if speakers else options
        loaded: LoadedModel
        with self._whisper(ref) as loaded:
            _check_options(ref.name, loaded.english_only, options)
            started = time.perf_counter()
            transcript = loaded.transcribe(audio, asr_options)
            elapsed = time.perf_counter() - started
        self.metrics.stage.labels(stage="vad+asr").observe(elapsed)
        log.info(
            "transcribed %.1f s of audio with %s in %.2f s (%s, %d segments)",
            audio.duration_ms / 1000,
            ref.name,
            elapsed,
            transcript.language,
            len(transcript.segments),
        )
        return self._post_process(transcript, audio, options, speakers)

    def _post_process(
        self,
        transcript: Transcript,
        audio: Audio,
        options: DecodeOptions,
        speakers: SpeakerRequest | None,
    ) -> Transcript:
        """Alignment, then diarization; each stage that cannot run says so in `notes`."""
        notes: list[str] = []
        if transcript.word_timestamps and self.aligner is not None:
            aligner = self.aligner
            aligned = self._timed("align", lambda: aligner.align(transcript, audio))
            transcript = aligned.transcript
            notes.extend(aligned.notes)
        if speakers is not None:
            if self.diarization is None:
                notes.append("diarization skipped: not available in this server")
            else:
                service = self.diarization
                result = self._timed("diarize", lambda: service.diarize(audio, speakers.limits))
                notes.extend(result.notes)
                if result.diarization is not None:
                    transcript = label_speakers(transcript, result.diarization)
                    if not speakers.return_embeddings:
                        transcript = replace(transcript, speaker_embeddings=None)
        if not options.word_timestamps:
            transcript = drop_words(transcript)
        return replace(transcript, notes=(*transcript.notes, *notes))

    def _detect(self, ref: ModelRef, path: Path, encoded: bool) -> LanguageGuess:
        self.evictor.sweep()
        audio = self._decode(path, encoded)
        with self._whisper(ref) as loaded:
            if loaded.english_only:
                raise InvalidRequest(
                    f"Model '{ref.name}' is English-only and cannot detect languages; use a "
                    "multilingual model such as 'base'.",
                    param="model",
                )
            return loaded.detect_language(audio)


def _check_options(name: str, english_only: bool, options: DecodeOptions) -> None:
    """English-only models cannot translate or transcribe other languages: say so rather
    than silently transcribing as English (which is what the engines would do)."""
    if not english_only:
        return
    if options.task == "translate":
        raise InvalidRequest(
            f"Model '{name}' is English-only and cannot translate; use a multilingual "
            "model such as 'base'.",
            param="model",
        )
    if options.language not in (None, "en"):
        raise InvalidRequest(
            f"Model '{name}' is English-only but language='{options.language}' was "
            "requested; use a multilingual model such as 'base'.",
            param="language",
        )
