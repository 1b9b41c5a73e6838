"""One transcription, stage by stage: decode -> VAD -> windows -> ASR -> alignment ->
diarization (the model work, `run_models`) and then speaker labels (`finish`), which needs
no model and runs after the admission permit is handed back.

Every method blocks: callers run them in worker threads. `progress(stage, fraction)` is
called between blocks with the fraction of the whole job done; it may raise to cancel.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from app.alignment.aligner import Aligner
from app.allocator import release_free_memory
from app.compute_thread import ComputeThread
from app.config import Settings
from app.diarization.assign import drop_words, label_speakers
from app.diarization.references import Voices, name_known_speakers
from app.diarization.service import DiarizationResult, DiarizationService
from app.domain import (
    DecodeOptions,
    LanguageGuess,
    Progress,
    Transcript,
    TranscriptionRequest,
)
from app.engines.base import Engine, LoadedModel
from app.errors import InvalidRequest
from app.metrics import Metrics
from app.models.cache import ModelCache
from app.models.registry import ModelRef, ModelRegistry
from app.pipeline.align import align_in_spans
from app.pipeline.asr import TextSink, transcribe_blocks
from app.pipeline.cpu_workers import CpuWorkers
from app.pipeline.options import check_options
from app.pipeline.overlap import Overlapped
from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.speakers import SpeakerStage
from app.pipeline.vad import SpeechRegion, VadOptions, speech_probabilities, speech_regions
from app.pipeline.window_asr import transcribe_windows
from app.pipeline.windows import (
    WINDOW_SAMPLES,
    Window,
    group_blocks,
    pack_windows,
    split_long,
)
from app.scheduler.window_scheduler import WindowScheduler

log = logging.getLogger(__name__)

NO_SPEECH_NOTE = "no speech found: the later stages did not run"
_LANGUAGE_SAMPLES = 600 * SAMPLE_RATE  # language detection reads the first 10 minutes

_WINDOWED_VAD = VadOptions(max_speech_duration_s=WINDOW_SAMPLES / SAMPLE_RATE)
# Where each stage's work sits in a job's overall progress (fractions of the whole).
_SPANS = {"decode": (0.0, 0.1), "vad": (0.1, 0.15), "transcribe": (0.15, 0.75)}
_SPANS |= {"align": (0.75, 0.8), "diarize": (0.8, 0.99)}


@dataclass(frozen=True)
class ModelOutput:
    transcript: Transcript
    diarization: DiarizationResult | None = None
    notes: tuple[str, ...] = ()
    known_voices: Voices = ()
    """(name, voice) of each known speaker sample, in the diarizing pipeline's space."""


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        registry: ModelRegistry,
        cache: ModelCache,
        metrics: Metrics,
        aligner: Aligner | None = None,
        diarization: DiarizationService | None = None,
        torch_thread: ComputeThread | None = None,
        asr_thread: ComputeThread | None = None,
        scheduler: WindowScheduler | None = None,
        cpu_workers: CpuWorkers | None = None,
        vad_threads: int | None = None,
    ) -> None:
        """`torch_thread`: where alignment and diarization run (app/compute_thread.py says
        why one thread); a new one when not given. `asr_thread`: where a torch engine's
        work runs; the torch thread when not given. When the two differ (on a GPU), a
        request's diarization runs beside its ASR (app/pipeline/overlap.py). `scheduler`:
        where windows are decoded, batched with other requests' windows; None = each
        request decodes its own windows in blocks, one after another (the sequential
        decoder). `cpu_workers`: where uploads
        are decoded and English words aligned (worker processes); in the calling thread when
        not given. `vad_threads`: how many requests run VAD at once (its network takes a
        core each; more at once only starve the thread that feeds the engine); by default
        the cores the CPU workers and that thread leave."""
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.cache = cache
        self.metrics = metrics
        self.aligner = aligner
        self.torch_thread = torch_thread or ComputeThread("torch")
        self.asr_thread = asr_thread or self.torch_thread
        self.speakers = SpeakerStage(diarization, self.torch_thread, metrics)
        self.scheduler = scheduler
        self.cpu_workers = cpu_workers or CpuWorkers(0)
        if vad_threads is None:
            vad_threads = (os.cpu_count() or 2) - self.cpu_workers.processes - 1
        self._vad_slots = threading.BoundedSemaphore(max(1, vad_threads))

    # --- before the permit ----------------------------------------------------------------
    def check(self, request: TranscriptionRequest) -> ModelRef:
        """Resolve the model (ALLOWED_MODELS included) and refuse options an English-only
        model cannot serve; downloads nothing (what a job is checked with when submitted:
        its download happens when it runs, in the worker)."""
        ref = self.registry.resolve(request.model)
        check_options(ref.name, ref.english_only, request.options)
        return ref

    def prepare(self, request: TranscriptionRequest) -> ModelRef:
        """`check`, then have the model's files (a hub download happens here, holding no
        permit)."""
        ref = self.check(request)
        self.registry.materialize(ref)
        return ref

    # --- under the permit -----------------------------------------------------------------
    def whisper(self, ref: ModelRef) -> AbstractContextManager[LoadedModel]:
        return self.cache.use(
            f"whisper/{ref.name}",
            lambda: self.engine.load(ref.name, self.registry.materialize(ref)),
        )

    def decode(
        self,
        src: Path,
        work: Path,
        encoded: bool,
        progress: Progress,
        head_s: float = math.inf,
    ) -> PcmFile:
        progress("decode", 0.0)
        limit = self.settings.max_audio_duration_s or math.inf
        pcm = self.metrics.timed(
            "decode",
            lambda: self.cpu_workers.decode(
                src, work / "audio.pcm", encoded=encoded, max_duration_s=limit, head_s=head_s
            ),
        )
        self.metrics.audio_duration.observe(pcm.duration_ms / 1000)
        return pcm

    def run_models(
        self,
        ref: ModelRef,
        src: Path,
        work: Path,
        request: TranscriptionRequest,
        progress: Progress,
        on_text: TextSink | None = None,
    ) -> ModelOutput:
        """`on_text` gets the transcript's segments window by window as they are decoded
        (before alignment and speaker labels)."""
        options, speakers = request.options, request.speakers
        pcm = self.decode(src, work, request.encoded, progress)
        regions = self._speech(pcm, options.vad_filter, _within("vad", progress))
        if not regions:
            log.info("no speech in %.1f s of audio", pcm.duration_ms / 1000)
            empty = Transcript(
                (), options.language or "en", 0.0, pcm.duration_ms, options.task, ref.name
            )
            return ModelOutput(empty, notes=(NO_SPEECH_NOTE,))
        # Speaker turns are put on words, so diarization needs word times even when the
        # client did not ask for them (they are dropped again in `finish`).
        asr_options = replace(options, word_timestamps=True) if speakers else options
        overlapped: Overlapped[DiarizationResult] | None = None
        if speakers is not None and self.asr_thread is not self.torch_thread:
            report = _within("diarize", progress)
            overlapped = self.speakers.beside(pcm, regions, speakers.limits, report)
        try:
            transcript, notes = self._asr_and_words(
                ref, pcm, regions, asr_options, progress, on_text
            )
        except BaseException:
            if overlapped is not None:
                overlapped.abandon()
            raise
        diarized: DiarizationResult | None = None
        voices: Voices = ()
        if speakers is not None:  # hands freed memory back after each of its spans itself
            diarized = (
                overlapped.result()
                if overlapped is not None
                else self.speakers.diarize(
                    pcm, regions, speakers.limits, _within("diarize", progress)
                )
            )
            if speakers.return_embeddings:
                diarized = self.speakers.voiceprints(pcm, diarized)
            labelled = diarized.diarization
            if speakers.known and labelled is not None:
                voices, said = self.speakers.known_voices(labelled, speakers.known)
                notes.extend(said)
        return ModelOutput(transcript, diarized, tuple(notes), voices)

    def _asr_and_words(
        self,
        ref: ModelRef,
        pcm: PcmFile,
        regions: list[SpeechRegion],
        asr_options: DecodeOptions,
        progress: Progress,
        on_text: TextSink | None,
    ) -> tuple[Transcript, list[str]]:
        """The transcript, its words aligned; the notes alignment left."""
        windows = pack_windows(regions)
        started = time.perf_counter()
        loaded: LoadedModel
        with self.whisper(ref) as loaded:
            check_options(ref.name, loaded.english_only, asr_options)
            transcript = self._transcribe(loaded, pcm, windows, asr_options, progress, on_text)
        release_free_memory()
        elapsed = time.perf_counter() - started
        self.metrics.stage.labels(stage="vad+asr").observe(elapsed)
        log.info(
            "transcribed %.1f s of audio (%d windows) with %s in %.2f s (%s, %d segments)",
            pcm.duration_ms / 1000,
            len(windows),
            ref.name,
            elapsed,
            transcript.language,
            len(transcript.segments),
        )
        notes: list[str] = []
        aligner = self.aligner
        method = aligner.method(transcript) if aligner is not None else None
        if aligner is not None and method is not None:
            progress("align", _SPANS["align"][0])
            how = method

            def align() -> tuple[Transcript, tuple[str, ...]]:
                return align_in_spans(aligner, how, transcript, pcm, self.cpu_workers)

            # wav2vec2 is torch work (its thread); PocketSphinx runs in the CPU workers.
            transcript, found = self.metrics.timed(
                "align", (lambda: self.torch_thread.run(align)) if method == "wav2vec2" else align
            )
            notes.extend(found)
            release_free_memory()
        return transcript, notes

    def _transcribe(
        self,
        loaded: LoadedModel,
        pcm: PcmFile,
        windows: list[Window],
        options: DecodeOptions,
        progress: Progress,
        on_text: TextSink | None,
    ) -> Transcript:
        scheduler, within = self.scheduler, _within("transcribe", progress)
        if scheduler is None:
            return self._on_engine_thread(
                lambda: transcribe_blocks(
                    loaded,
                    pcm,
                    group_blocks(windows),
                    options,
                    batched=self.settings.batch_size > 1,
                    progress=within,
                    on_text=on_text,
                )
            )
        with scheduler.open(loaded) as stream:
            return transcribe_windows(
                stream,
                pcm,
                windows,
                options,
                english_only=loaded.english_only,
                ahead=scheduler.max_batch_windows,
                progress=within,
                on_text=on_text,
            )

    def _speech(
        self, pcm: PcmFile, vad_filter: bool, progress: Callable[[float], None]
    ) -> list[SpeechRegion]:
        if not vad_filter:
            return split_long([SpeechRegion(0, pcm.samples)]) if pcm.samples else []
        started = time.perf_counter()
        with self._vad_slots:
            probabilities = speech_probabilities(pcm, progress)
        # Windows decoded on their own must not start or end inside a word: with the
        # scheduler, speech longer than a window is cut at its last pause before 30 s (as
        # batched decoders cut it), not at 30 s sharp. The sequential decoder reads on
        # across windows and keeps faster-whisper's own regions.
        options = _WINDOWED_VAD if self.scheduler is not None else None
        regions = speech_regions(probabilities, pcm.samples, options)
        self.metrics.stage.labels(stage="vad").observe(time.perf_counter() - started)
        return regions

    def preload_diarization(self) -> None:
        self.speakers.preload()

    def close(self) -> None:
        self.speakers.close()

    # --- after the permit -----------------------------------------------------------------
    def finish(self, output: ModelOutput, request: TranscriptionRequest) -> Transcript:
        """Speaker labels on words and segments, words dropped where not asked for."""
        transcript, notes = output.transcript, list(output.notes)
        speakers = request.speakers
        if output.diarization is not None and speakers is not None:
            notes.extend(output.diarization.notes)
            if output.diarization.diarization is not None:
                transcript = label_speakers(transcript, output.diarization.diarization)
                service = self.speakers.service
                if output.known_voices and service is not None:
                    transcript, said = name_known_speakers(
                        transcript, output.known_voices, service.reference_threshold
                    )
                    notes.extend(said)
                # What a client keeps across recordings: the 256-d voiceprints, never the
                # diarizer's own (192-d CAM++) vectors.
                handed_out = transcript.voiceprints if speakers.return_embeddings else None
                transcript = replace(transcript, speaker_embeddings=handed_out, voiceprints=None)
        if not request.options.word_timestamps:
            transcript = drop_words(transcript)
        return replace(transcript, notes=(*transcript.notes, *notes))

    def detect_language(self, ref: ModelRef, src: Path, work: Path, encoded: bool) -> LanguageGuess:
        # Only the part language detection reads is decoded: a 6-hour upload costs what
        # its first minutes do.
        head_s = _LANGUAGE_SAMPLES / SAMPLE_RATE
        pcm = self.decode(src, work, encoded, lambda stage, fraction: None, head_s)
        loaded: LoadedModel
        with self.whisper(ref) as loaded:
            if loaded.english_only:
                raise InvalidRequest(
                    f"Model '{ref.name}' is English-only and cannot detect languages; use a "
                    "multilingual model such as 'base'.",
                    param="model",
                )
            return self._on_engine_thread(
                lambda: loaded.detect_language(pcm.audio(0, _LANGUAGE_SAMPLES))
            )

    def _on_engine_thread[T](self, work: Callable[[], T]) -> T:
        """A torch engine's work runs on the ASR thread (the torch thread on a CPU)."""
        if self.engine.runs_torch:
            return self.asr_thread.run(work)
        return work()


def _within(stage: str, progress: Progress) -> Callable[[float], None]:
    low, high = _SPANS[stage]
    return lambda fraction: progress(stage, low + (high - low) * fraction)
