"""Domain objects <-> the JSON text a job row keeps (its request and its result)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from app.diarization.diarizer import SpeakerLimits
from app.domain import DecodeOptions, Segment, Transcript, Word
from app.pipeline.request import SpeakerRequest, TranscriptionRequest


def request_json(request: TranscriptionRequest) -> str:
    if request.speakers is not None and request.speakers.known:
        # Voice samples are request-time data of the OpenAI endpoint, which runs no jobs.
        raise ValueError("known speaker samples are not stored in jobs")
    return json.dumps(asdict(request))


def request_from_json(text: str) -> TranscriptionRequest:
    data = json.loads(text)
    speakers = data.get("speakers")
    return TranscriptionRequest(
        model=data.get("model"),
        options=DecodeOptions(**data["options"]),
        speakers=SpeakerRequest(SpeakerLimits(**speakers["limits"]), speakers["return_embeddings"])
        if speakers
        else None,
        encoded=data.get("encoded", True),
    )


def transcript_json(transcript: Transcript) -> str:
    return json.dumps(asdict(transcript), ensure_ascii=False)


def _segment(data: dict[str, Any]) -> Segment:
    words = tuple(Word(**w) for w in data.pop("words"))
    tokens = tuple(data.pop("tokens"))
    return Segment(**data, words=words, tokens=tokens)


def transcript_from_json(text: str) -> Transcript:
    data = json.loads(text)
    segments = tuple(_segment(s) for s in data.pop("segments"))
    notes = tuple(data.pop("notes"))
    return Transcript(segments=segments, notes=notes, **data)
