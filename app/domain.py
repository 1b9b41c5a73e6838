"""Domain types shared by engines, writers and routers. Times are integer milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class Word:
    start_ms: int
    end_ms: int
    text: str
    probability: float
    speaker: str | None = None

    def shifted(self, by_ms: int) -> Word:
        """The same word `by_ms` later (a window's time line onto the recording's)."""
        return replace(self, start_ms=self.start_ms + by_ms, end_ms=self.end_ms + by_ms)


@dataclass(frozen=True)
class Segment:
    id: int
    start_ms: int
    end_ms: int
    text: str
    words: tuple[Word, ...] = ()
    seek: int = 0
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    speaker: str | None = None

    def shifted(self, by_ms: int) -> Segment:
        """The same segment, and its words, `by_ms` later."""
        return replace(
            self,
            start_ms=self.start_ms + by_ms,
            end_ms=self.end_ms + by_ms,
            words=tuple(w.shifted(by_ms) for w in self.words),
        )


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration_ms: int
    task: Task = "transcribe"
    model: str = ""
    word_timestamps: str | None = None
    """Where word times came from: `whisper-dtw`, `wav2vec2` or `pocketsphinx` (forced
    alignment), or None when words were not requested."""
    notes: tuple[str, ...] = ()
    """Degradations worth telling the client about (e.g. a stage that was skipped)."""
    diarization: str | None = None
    """The pipeline that labelled speakers, or None when speakers were not labelled."""
    speaker_embeddings: dict[str, list[float]] | None = None
    """Speaker label -> voice. Inside the pipeline: the diarizer's own space (what
    known_speaker_references are compared in); as answered (`return_speaker_embeddings`):
    the 256-d voiceprints below."""
    voiceprints: dict[str, list[float]] | None = None
    """Speaker label -> a 256-d GE2E voice embedding (app/diarization/voiceprint.py), the
    vectors clients keep as voice profiles across recordings; None when not asked for."""
    speaker_names: dict[str, str] | None = None
    """Speaker label -> the name of the known speaker sample it matched (OpenAI's
    known_speaker_references); None when no samples were given."""

    def renamed(self, names: dict[str, str]) -> Transcript:
        """Speaker labels replaced by `names` (label -> name) on segments and words."""

        def name(label: str | None) -> str | None:
            return names.get(label, label) if label is not None else None

        segments = tuple(
            replace(
                s,
                speaker=name(s.speaker),
                words=tuple(replace(w, speaker=name(w.speaker)) for w in s.words),
            )
            for s in self.segments
        )

        def keyed(vectors: dict[str, list[float]] | None) -> dict[str, list[float]] | None:
            return None if vectors is None else {name(k) or k: v for k, v in vectors.items()}

        return replace(
            self,
            segments=segments,
            speaker_embeddings=keyed(self.speaker_embeddings),
            voiceprints=keyed(self.voiceprints),
        )

    @property
    def speakers(self) -> list[str]:
        """Speaker labels in order of first appearance."""
        seen: dict[str, None] = {}
        for segment in self.segments:
            if segment.speaker:
                seen.setdefault(segment.speaker)
        return list(seen)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True)
class DecodeOptions:
    """What one request asks of the ASR engine. Built per request, never shared."""

    task: Task = "transcribe"
    language: str | None = None
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperature: float | None = None
    """None or 0 = greedy with fallback to higher temperatures on failure (Whisper's
    default schedule); > 0 = sample at exactly this temperature."""
    word_timestamps: bool = False
    vad_filter: bool = True
    beam_size: int = 5


@dataclass(frozen=True)
class LanguageGuess:
    code: str
    probability: float
    all_probabilities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Audio:
    """Decoded audio: mono float32 samples at 16 kHz."""

    samples: object  # numpy.ndarray; kept untyped so the domain has no numpy import
    sample_rate: int = 16000

    @property
    def duration_ms(self) -> int:
        return int(len(self.samples) * 1000 / self.sample_rate)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Tenant:
    """Whose request this is: the API key's id (a digest, never the key), or None on a
    server without keys (one tenant, as before keys). Jobs belong to the key that made
    them; an admin key (marked in API_KEYS_FILE) sees every key's jobs."""

    key_id: str | None = None
    admin: bool = False

    @property
    def sees_all(self) -> bool:
        return self.admin or self.key_id is None

    def owns(self, owner: str | None) -> bool:
        """Whether a job made by `owner` is this caller's own."""
        return owner == self.key_id


NO_KEYS = Tenant()
"""The caller on a server without API keys."""


# What a transcription asks for (what a job stores, what the routers build) and how it
# reports progress: shared by the API, the jobs, the run and the pipeline.

Progress = Callable[[str, float], None]
"""`progress(stage, fraction of the whole job)`; it may raise to cancel."""


@dataclass(frozen=True)
class SpeakerLimits:
    """How many speakers the client says there are (each None: let the diarizer decide)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


@dataclass(frozen=True)
class KnownSpeaker:
    """A client's name for a voice and a short sample of it (2-10 s, decoded)."""

    name: str
    sample: Audio


@dataclass(frozen=True)
class SpeakerRequest:
    """A request for speaker labels (and, optionally, one embedding per speaker)."""

    limits: SpeakerLimits = field(default_factory=SpeakerLimits)
    return_embeddings: bool = False
    known: tuple[KnownSpeaker, ...] = ()
    """Voice samples whose names go to the speakers they match (OpenAI's
    known_speaker_references); never stored in a job."""


@dataclass(frozen=True)
class TranscriptionRequest:
    """Everything one transcription asks for; what a job stores."""

    model: str | None = None
    options: DecodeOptions = field(default_factory=DecodeOptions)
    speakers: SpeakerRequest | None = None
    encoded: bool = True
