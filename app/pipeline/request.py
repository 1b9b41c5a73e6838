"""What a transcription asks for (what a job stores, what the routers build) and how it
reports progress: the types the API, the jobs and the serving layer share with the
pipeline, without importing the pipeline's machinery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.diarization.diarizer import SpeakerLimits
from app.diarization.references import KnownSpeaker
from app.domain import DecodeOptions

Progress = Callable[[str, float], None]
"""`progress(stage, fraction of the whole job)`; it may raise to cancel."""


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
