"""CTranslate2 engine through faster-whisper (the library whisperX runs on).

faster-whisper is called directly rather than through whisperX's ASR wrapper because the
wrapper drops what the OpenAI verbose_json contract needs per segment (tokens, avg_logprob,
compression_ratio, no_speech_prob, temperature) and offers no DTW word timestamps. VAD is
faster-whisper's bundled Silero model (no download).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.domain import Audio, DecodeOptions, LanguageGuess, Segment, Transcript, Word
from app.engines.base import (
    SpeechWindow,
    WindowText,
    english_only_guess,
    temperature_schedule,
    whisper_transcript,
)
from app.engines.ctranslate2_windows import CT2WindowDecoder

log = logging.getLogger(__name__)

_CHUNK_S = 30


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def decode_kwargs(options: DecodeOptions) -> dict[str, Any]:
    """faster-whisper keyword arguments for one request (the bench decodes with these too)."""
    return {
        "language": options.language,
        "task": options.task,
        "beam_size": options.beam_size,
        "initial_prompt": options.initial_prompt,
        "hotwords": options.hotwords,
        "word_timestamps": options.word_timestamps,
        "vad_filter": options.vad_filter,
    }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class CTranslate2Model:
    def __init__(self, name: str, model: Any, batch_size: int) -> None:
        from faster_whisper import BatchedInferencePipeline

        self.name = name
        self._model = model
        self.english_only = not model.model.is_multilingual
        self._batch_size = batch_size
        self._batched = BatchedInferencePipeline(model) if batch_size > 1 else None
        self._windows = CT2WindowDecoder(model)

    def transcribe(
        self,
        audio: Audio,
        options: DecodeOptions,
        windows: list[tuple[float, float]] | None = None,
    ) -> Transcript:
        samples = np.asarray(audio.samples, dtype=np.float32)
        kwargs = decode_kwargs(options)
        temperatures = temperature_schedule(options.temperature)
        if self._batched is not None:
            # The batched pipeline decodes each VAD chunk once, at one temperature.
            kwargs["temperature"] = temperatures[0]
            if windows:
                kwargs["clip_timestamps"] = [{"start": s, "end": e} for s, e in windows]
            elif not options.vad_filter:
                kwargs["clip_timestamps"] = _fixed_chunks(len(samples) / audio.sample_rate)
            segments, info = self._batched.transcribe(
                samples, batch_size=self._batch_size, **kwargs
            )
        else:
            kwargs["temperature"] = list(temperatures)
            segments, info = self._model.transcribe(samples, **kwargs)
        result = tuple(_segment(i, s) for i, s in enumerate(segments))  # decoding happens here
        return whisper_transcript(
            self.name, result, info.language, info.language_probability, audio.duration_ms, options
        )

    def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        return self._windows.decode(windows)

    def detect_language(self, audio: Audio) -> LanguageGuess:
        if self.english_only:
            return english_only_guess()
        samples = np.asarray(audio.samples, dtype=np.float32)
        code, prob, all_probs = self._model.detect_language(samples, vad_filter=True)
        return LanguageGuess(code, float(prob), {c: float(p) for c, p in all_probs[:10]})

    def unload(self) -> None:
        self._batched = None
        self._windows = None  # type: ignore[assignment]
        self._model = None
        gc.collect()


def _fixed_chunks(duration_s: float) -> list[dict[str, float]]:
    starts = np.arange(0, max(duration_s, 0.01), _CHUNK_S)
    return [{"start": float(s), "end": float(min(s + _CHUNK_S, duration_s))} for s in starts]


def _segment(index: int, seg: Any) -> Segment:
    words = tuple(
        Word(_ms(w.start), _ms(w.end), w.word, float(w.probability)) for w in (seg.words or ())
    )
    return Segment(
        id=index,
        start_ms=_ms(seg.start),
        end_ms=_ms(seg.end),
        text=seg.text,
        words=words,
        seek=int(seg.seek),
        tokens=tuple(int(t) for t in seg.tokens),
        temperature=float(seg.temperature or 0.0),
        avg_logprob=float(seg.avg_logprob),
        compression_ratio=float(seg.compression_ratio),
        no_speech_prob=float(seg.no_speech_prob),
    )


class CTranslate2Engine:
    name = "ctranslate2"
    runs_torch = False

    def __init__(
        self, device: str, compute_type: str, batch_size: int, cpu_threads: int, num_workers: int
    ) -> None:
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        self._batch_size = batch_size
        self._cpu_threads = cpu_threads or os.cpu_count() or 1
        self._num_workers = num_workers
        import ctranslate2

        # The fallback samples at temperatures > 0: a fixed seed makes a fresh server give
        # the same transcripts for the same requests in the same order (benchmarks compare
        # decoders run to run; CTranslate2's generator is process-wide).
        ctranslate2.set_random_seed(0)

    def load(self, name: str, path: Path) -> CTranslate2Model:
        from faster_whisper import WhisperModel

        log.info("loading %s from %s on %s (%s)", name, path, self.device, self.compute_type)
        model = WhisperModel(
            str(path),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self._cpu_threads,
            num_workers=self._num_workers,
            local_files_only=True,
        )
        return CTranslate2Model(name, model, self._batch_size)
