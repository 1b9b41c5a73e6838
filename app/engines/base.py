"""The interface every ASR engine implements, so the pipeline never sees engine types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from app.domain import Audio, DecodeOptions, LanguageGuess, Segment, Transcript

# faster-whisper's per-window quality checks (the defaults of WhisperModel.transcribe): a
# window fails when its text compresses too well (a repetition loop) or its average
# log-probability is too low, unless its no-speech probability says it is silence.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6

# Whisper's fallback schedule: start greedy, re-decode hotter when a window fails the
# compression-ratio or log-probability checks.
FALLBACK_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def temperature_schedule(temperature: float | None) -> tuple[float, ...]:
    """OpenAI semantics: 0 (or unset) = automatic fallback; > 0 = exactly that temperature."""
    if not temperature:
        return FALLBACK_TEMPERATURES
    return (float(temperature),)


def prompt_with_hotwords(prompt: str | None, hotwords: str | None) -> str | None:
    """Fold hotwords into the decoding prompt for engines without a hotwords feature:
    Whisper conditions on the prompt's text, which biases it toward those spellings."""
    parts = [p.strip() for p in (hotwords, prompt) if p and p.strip()]
    return " ".join(parts) or None


def whisper_transcript(
    name: str,
    segments: tuple[Segment, ...],
    language: str,
    probability: float,
    duration_ms: int,
    options: DecodeOptions,
) -> Transcript:
    """Whisper's transcript of `duration_ms` of audio, as an engine call or the pipeline's
    ASR stage returns it (word times, when asked for, come from DTW)."""
    return Transcript(
        segments=segments,
        language=language,
        language_probability=float(probability),
        duration_ms=duration_ms,
        task=options.task,
        model=name,
        word_timestamps="whisper-dtw" if options.word_timestamps else None,
    )


@dataclass(frozen=True)
class SpeechWindow:
    """At most 30 s of speech (16 kHz float32 samples) and the options it is decoded with.
    `options.language` None = detect it from this window (multilingual models)."""

    samples: object  # numpy.ndarray, untyped like Audio.samples
    options: DecodeOptions


@dataclass(frozen=True)
class WindowText:
    """A window's segments, with times in ms from the window's first sample."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float


def decode_one_by_one(model: LoadedModel, windows: Sequence[SpeechWindow]) -> list[WindowText]:
    """`decode_windows` for engines without a batched window decoder: one call per window."""
    out = []
    for window in windows:
        audio = Audio(window.samples)
        result = model.transcribe(audio, replace(window.options, vad_filter=False))
        out.append(WindowText(result.segments, result.language, result.language_probability))
    return out


def english_only_guess() -> LanguageGuess:
    """An English-only model's answer to language detection."""
    return LanguageGuess("en", 1.0, {"en": 1.0})


class LoadedModel(Protocol):
    """A Whisper model in memory, able to serve many requests (options are per call)."""

    name: str
    english_only: bool

    def transcribe(
        self,
        audio: Audio,
        options: DecodeOptions,
        windows: list[tuple[float, float]] | None = None,
    ) -> Transcript:
        """`windows`: the [start, end) seconds of the speech windows (each <= 30 s) the
        pipeline cut `audio` into; batched decoders decode them side by side, sequential
        ones may ignore them."""
        ...

    def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        """Decode windows side by side, each with its own options (as the window scheduler
        batches them from many requests); one result per window, in order. Each window is
        decoded on its own: no text is carried from one window into the next."""
        ...

    def detect_language(self, audio: Audio) -> LanguageGuess: ...

    def unload(self) -> None: ...


class Engine(Protocol):
    name: str
    device: str
    compute_type: str
    runs_torch: bool
    """Its models compute with PyTorch: the pipeline runs their calls on its torch thread
    (app/compute_thread.py); other engines keep threads of their own."""

    def load(self, name: str, path: Path) -> LoadedModel: ...
