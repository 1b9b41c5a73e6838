"""MLX engine through mlx-whisper: Apple Silicon's engine, also runnable on Linux's CPU build.

Models are the same CTranslate2 folders the registry hands every engine, converted once into
mlx-whisper's layout under <CACHE_DIR>/mlx/<name>/ (app.models.ct2_to_mlx). VAD is
faster-whisper's bundled Silero model, applied exactly as the CTranslate2 engine applies it
(speech concatenated, times mapped back), so both engines see the same audio. mlx-whisper
has no beam search: decoding is greedy (with the temperature fallback), whatever beam_size.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.compute_thread import ComputeThread
from app.domain import Audio, DecodeOptions, LanguageGuess, Segment, Transcript, Word
from app.engines.base import (
    SpeechWindow,
    WindowText,
    decode_one_by_one,
    prompt_with_hotwords,
    temperature_schedule,
)
from app.errors import EngineUnavailable
from app.models.ct2_to_mlx import convert

log = logging.getLogger(__name__)

_SAMPLE_RATE = 16000
_WINDOW_SAMPLES = 30 * _SAMPLE_RATE

# mlx-whisper's transcribe() takes its model from one process-wide slot
# (mlx_whisper.transcribe.ModelHolder) and would load (or download) whatever path it is given.
# Every call therefore puts its own model object into that slot and runs on this one thread,
# so two models are never served through the slot at once. One thread also because MLX
# streams belong to the thread that made them ("There is no Stream(cpu, 0) in current
# thread" otherwise): loading and every evaluation happen here, and with GPU_CONCURRENCY > 1
# MLX requests queue for it rather than run side by side. Its thread starts on first use.
_MLX_THREAD = ComputeThread("mlx")


def prefer_openblas() -> bool:
    """Make MLX's Linux CPU build use the system OpenBLAS; return whether it does.

    The mlx[cpu] wheel links a reference BLAS that makes Whisper several times slower.
    Loading libopenblas.so.0 (Debian: libopenblas0-pthread) with RTLD_GLOBAL before mlx.core
    is first imported binds MLX's cblas calls to it, as LD_PRELOAD=libopenblas.so.0 would.
    """
    if sys.platform != "linux":
        return False
    if "libopenblas" in os.environ.get("LD_PRELOAD", ""):
        return True
    if "mlx.core" in sys.modules:
        return False  # too late: MLX is already bound to its own BLAS
    try:
        ctypes.CDLL("libopenblas.so.0", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    return True


class MLXModel:
    def __init__(self, name: str, folder: Path, model: Any, device: Any, fp16: bool) -> None:
        self.name = name
        self.english_only = not model.is_multilingual
        self._folder = folder
        self._model = model
        self._device = device
        self._fp16 = fp16

    def transcribe(
        self,
        audio: Audio,
        options: DecodeOptions,
        windows: list[tuple[float, float]] | None = None,  # sequential: one window at a time
    ) -> Transcript:
        samples = np.asarray(audio.samples, dtype=np.float32)
        speech, timeline, notes = _speech_only(samples, options.vad_filter)
        import mlx.core as mx

        def decode() -> tuple[str, float, dict[str, Any]]:
            with mx.stream(self._device):
                if self.english_only:
                    language, probability = "en", 1.0
                elif options.language:
                    language, probability = options.language, 1.0
                else:
                    language, probability = max(self._language_probs(speech).items(), key=_value)
                return (
                    language,
                    probability,
                    self._mlx_whisper_transcribe(speech, options, language),
                )

        language, probability, result = _MLX_THREAD.run(decode)
        kept = [s for s in result["segments"] if s["text"].strip()]  # as faster-whisper does
        return Transcript(
            segments=tuple(_segment(i, s, timeline) for i, s in enumerate(kept)),
            language=language,
            language_probability=float(probability),
            duration_ms=audio.duration_ms,
            task=options.task,
            model=self.name,
            word_timestamps="whisper-dtw" if options.word_timestamps else None,
            notes=notes,
        )

    def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        return decode_one_by_one(self, windows)  # MLX decodes one window at a time anyway

    def detect_language(self, audio: Audio) -> LanguageGuess:
        if self.english_only:
            return LanguageGuess("en", 1.0, {"en": 1.0})
        speech, _, _ = _speech_only(np.asarray(audio.samples, dtype=np.float32), True)
        import mlx.core as mx

        def guess() -> dict[str, float]:
            with mx.stream(self._device):
                return self._language_probs(speech)

        probs = _MLX_THREAD.run(guess)
        top = sorted(probs.items(), key=_value, reverse=True)[:10]
        return LanguageGuess(top[0][0], float(top[0][1]), {c: float(p) for c, p in top})

    def unload(self) -> None:
        self._model = None
        gc.collect()
        import mlx.core as mx

        _MLX_THREAD.run(mx.clear_cache)

    # --- on the MLX thread ---------------------------------------------------------------
    def _language_probs(self, speech: np.ndarray) -> dict[str, float]:
        """Whisper's language guess on the first 30 s of speech (faster-whisper's choice)."""
        import mlx.core as mx
        from mlx_whisper.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

        n_mels = self._model.dims.n_mels
        mel = log_mel_spectrogram(speech[:_WINDOW_SAMPLES], n_mels=n_mels, padding=_WINDOW_SAMPLES)
        mel = pad_or_trim(mel, N_FRAMES, axis=-2).astype(mx.float16 if self._fp16 else mx.float32)
        _, probs = self._model.detect_language(mel)
        return dict(probs)

    def _mlx_whisper_transcribe(
        self, speech: np.ndarray, options: DecodeOptions, language: str
    ) -> dict[str, Any]:
        from mlx_whisper.transcribe import ModelHolder, transcribe

        # The slot is keyed by the converted folder, so even a mismatch could only ever load
        # this model from disk, never reach for the hub.
        ModelHolder.model, ModelHolder.model_path = self._model, str(self._folder)
        try:
            return transcribe(
                speech,
                path_or_hf_repo=str(self._folder),
                verbose=None,  # no progress bar, no printing
                temperature=temperature_schedule(options.temperature),
                initial_prompt=prompt_with_hotwords(options.initial_prompt, options.hotwords),
                word_timestamps=options.word_timestamps,
                language=language,
                task=options.task,
                fp16=self._fp16,  # float16 on CPU is slow: float32 there
            )
        finally:
            ModelHolder.model = ModelHolder.model_path = None  # never keep a model alive


def _value(item: tuple[str, float]) -> float:
    return item[1]


def _speech_only(samples: np.ndarray, vad_filter: bool) -> tuple[np.ndarray, Any, tuple[str, ...]]:
    """The speech of `samples` back to back, and the map from its times to the original's."""
    if not vad_filter:
        return samples, None, ()
    try:
        from faster_whisper.vad import (
            SpeechTimestampsMap,
            VadOptions,
            collect_chunks,
            get_speech_timestamps,
        )
    except ImportError:  # faster-whisper is not a dependency on macOS arm64
        return samples, None, ("VAD skipped: faster-whisper (bundled Silero VAD) not installed",)
    chunks = get_speech_timestamps(samples, VadOptions())
    pieces, _ = collect_chunks(samples, chunks)
    timeline = SpeechTimestampsMap(chunks, _SAMPLE_RATE) if chunks else None
    return np.concatenate(pieces).astype(np.float32), timeline, ()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _segment(index: int, seg: dict[str, Any], timeline: Any) -> Segment:
    """mlx-whisper's segment dict -> Segment, with VAD-removed silence put back into the times
    the way faster-whisper restores them (a word's chunk is the one holding its middle)."""
    raw_words = seg.get("words") or []
    words: list[Word] = []
    for w in raw_words:
        start, end = float(w["start"]), float(w["end"])
        if timeline is not None:
            chunk = timeline.get_chunk_index((start + end) / 2)
            start = timeline.get_original_time(start, chunk)
            end = timeline.get_original_time(end, chunk)
        words.append(Word(_ms(start), _ms(end), w["word"], float(w["probability"])))
    if words:
        start_ms, end_ms = words[0].start_ms, words[-1].end_ms
    elif timeline is not None:
        start_ms = _ms(timeline.get_original_time(float(seg["start"])))
        end_ms = _ms(timeline.get_original_time(float(seg["end"]), is_end=True))
    else:
        start_ms, end_ms = _ms(float(seg["start"])), _ms(float(seg["end"]))
    return Segment(
        id=index,
        start_ms=start_ms,
        end_ms=end_ms,
        text=seg["text"],
        words=tuple(words),
        seek=int(seg["seek"]),
        tokens=tuple(int(t) for t in seg["tokens"]),
        temperature=float(seg["temperature"]),
        avg_logprob=float(seg["avg_logprob"]),
        compression_ratio=float(seg["compression_ratio"]),
        no_speech_prob=float(seg["no_speech_prob"]),
    )


class MLXEngine:
    name = "mlx"
    runs_torch = False

    def __init__(self, cache_dir: Path, device: str = "auto", compute_type: str = "auto") -> None:
        fast_blas = prefer_openblas()  # before the first import of mlx.core
        import mlx.core as mx
        import mlx_whisper  # noqa: F401  (missing: ImportError, which select.py explains)

        self._cache_dir = cache_dir
        if device == "cpu":
            self._device = mx.Device(mx.cpu)
        elif device == "auto":
            self._device = mx.default_device()
        elif mx.is_available(mx.gpu):  # cuda, mps, gpu: MLX's one GPU (Metal or CUDA)
            self._device = mx.Device(mx.gpu)
        else:
            raise EngineUnavailable(f"DEVICE={device}, but this MLX build has no GPU.")
        self.device = "gpu" if self._device.type == mx.DeviceType.gpu else "cpu"
        if compute_type not in ("auto", "float16", "float32"):
            log.warning("COMPUTE_TYPE=%s is not an MLX type; using auto", compute_type)
            compute_type = "auto"
        if compute_type == "auto":  # float16 on the CPU is emulated and slow
            compute_type = "float16" if self.device == "gpu" else "float32"
        self.compute_type = compute_type
        log.info(
            "MLX on %s (%s); decoding is greedy, beam_size is not used", self.device, compute_type
        )
        if self.device == "cpu" and sys.platform == "linux" and not fast_blas:
            log.warning(
                "MLX runs on a slow reference BLAS: install OpenBLAS "
                "(apt-get install libopenblas0-pthread) or set LD_PRELOAD=libopenblas.so.0"
            )

    def load(self, name: str, path: Path) -> MLXModel:
        import mlx.core as mx
        from mlx_whisper.load_models import load_model

        folder = convert(path, self._cache_dir, name)
        fp16 = self.compute_type == "float16"
        log.info("loading %s from %s on MLX %s (%s)", name, folder, self.device, self.compute_type)

        def load() -> Any:
            with mx.stream(self._device):
                model = load_model(str(folder), dtype=mx.float16 if fp16 else mx.float32)
                if fp16:  # the conversion is float32; alignment_heads stay integers
                    model.set_dtype(mx.float16)
                return model

        model = _MLX_THREAD.run(load)
        _compile_dtw()
        return MLXModel(name, folder, model, self._device, fp16)


def _compile_dtw() -> None:
    """mlx-whisper's DTW is numba-compiled on first use (seconds); pay that at load time
    rather than in the first request that asks for word timestamps."""
    from mlx_whisper.timing import dtw

    dtw(np.zeros((2, 3), dtype=np.float32))
