"""A transcription's speaker stages: diarization (after ASR, or beside it), the speakers'
voiceprints and the known speakers' samples embedded in the same space.

Where they run: with one request diarizing at a time, wholly on the torch thread
(app/compute_thread.py says why one thread); with several (`DiarizationService.concurrency`
> 1, a GPU), each in a thread of this stage's pool, their networks' batches merged on the
torch thread by the service's batcher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from app.compute_thread import ComputeThread
from app.diarization.diarizer import Diarization
from app.diarization.references import Voices, embed_known
from app.diarization.service import DiarizationResult, DiarizationService
from app.domain import KnownSpeaker, SpeakerLimits
from app.metrics import Metrics
from app.pipeline.diarize import diarize_recording
from app.pipeline.overlap import Overlapped
from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.vad import SpeechRegion

log = logging.getLogger(__name__)

Report = Callable[[float], None]


class SpeakerStage:
    def __init__(
        self, service: DiarizationService | None, torch_thread: ComputeThread, metrics: Metrics
    ) -> None:
        self.service = service
        self.torch_thread = torch_thread
        self._metrics = metrics
        side_by_side = service.concurrency if service is not None else 1
        self._threads = (
            ThreadPoolExecutor(side_by_side, thread_name_prefix="diarize")
            if side_by_side > 1
            else None
        )

    def beside(
        self, pcm: PcmFile, regions: list[SpeechRegion], limits: SpeakerLimits, report: Report
    ) -> Overlapped[DiarizationResult]:
        """Diarization started now, to run while the caller transcribes."""
        submit = self._threads.submit if self._threads else self.torch_thread.submit
        return Overlapped(
            submit, lambda tell, gone: self._diarize_here(pcm, regions, limits, tell, gone), report
        )

    def diarize(
        self, pcm: PcmFile, regions: list[SpeechRegion], limits: SpeakerLimits, report: Report
    ) -> DiarizationResult:
        if self._threads is not None:  # the request's own thread; networks batched
            return self._diarize_here(pcm, regions, limits, report)
        return self.torch_thread.run(lambda: self._diarize_here(pcm, regions, limits, report))

    def _diarize_here(
        self,
        pcm: PcmFile,
        regions: list[SpeechRegion],
        limits: SpeakerLimits,
        report: Report,
        gone: Callable[[], bool] = lambda: False,
    ) -> DiarizationResult:
        """`gone()`: whether the request has gone (its queued network calls are dropped)."""
        service = self.service
        if service is None:
            return DiarizationResult(None, ("diarization skipped: not available in this server",))

        def diarize() -> DiarizationResult:
            with service.on_behalf(gone):
                return diarize_recording(service, pcm, regions, limits, report)

        return self._metrics.timed("diarize", diarize)

    def voiceprints(self, pcm: PcmFile, result: DiarizationResult) -> DiarizationResult:
        """The diarized speakers' 256-d voiceprints, read from their own turns."""
        found, service = result.diarization, self.service
        if found is None or service is None:
            return result

        def read(start_ms: int, end_ms: int) -> np.ndarray:
            return pcm.read(start_ms * SAMPLE_RATE // 1000, end_ms * SAMPLE_RATE // 1000)

        try:
            prints = self._metrics.timed(
                "voiceprints",
                lambda: self.torch_thread.run(lambda: service.voiceprints(found.turns, read)),
            )
        except Exception as exc:  # speakers without voiceprints beat no transcript
            log.warning("speaker voiceprints failed", exc_info=True)
            note = f"speaker_embeddings not computed: {type(exc).__name__}"
            return replace(result, notes=(*result.notes, note))
        return replace(result, diarization=replace(found, voiceprints=prints))

    def known_voices(
        self, labelled: Diarization, known: tuple[KnownSpeaker, ...]
    ) -> tuple[Voices, tuple[str, ...]]:
        """The known speakers' samples embedded as `labelled`'s pipeline embeds; notes."""
        service = self.service
        if service is None:
            return (), ()
        pipeline = labelled.pipeline
        return self.torch_thread.run(lambda: embed_known(service, pipeline, known))

    def preload(self) -> None:
        if self.service is not None:
            self.torch_thread.run(self.service.preload)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
