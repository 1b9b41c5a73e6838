"""Domain objects <-> the JSON text a job row keeps (its request and its result)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from app.domain import (
    DecodeOptions,
    Segment,
    SpeakerLimits,
    SpeakerRequest,
    Transcript,
    TranscriptionRequest,
    Word,
)

REQUEST_VERSION = 1
"""The stored request's layout. Rows without a version are of the releases before it (the
same fields); a newer version than this one is refused rather than half-read."""


class UnreadableRequest(ValueError):
    """A stored request this release cannot run (corrupt, or from a newer release)."""


def request_json(request: TranscriptionRequest) -> str:
    if request.speakers is not None and request.speakers.known:
        # Voice samples are request-time data of the OpenAI endpoint, which runs no jobs.
        raise ValueError("known speaker samples are not stored in jobs")
    return json.dumps({"version": REQUEST_VERSION, **asdict(request)})


def _known[T](kind: type[T], data: Any) -> T:
    """`kind` built from the fields of `data` it has; fields it does not know are left out
    (written by a later release), missing ones take their defaults."""
    if not isinstance(data, dict):
        raise TypeError(f"{kind.__name__} is not an object")
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{k: v for k, v in data.items() if k in names})


def request_from_json(text: str) -> TranscriptionRequest:
    """The stored request, read tolerantly; UnreadableRequest says why it cannot be."""
    try:
        data = json.loads(text)
        version = data.get("version", REQUEST_VERSION)
        if not isinstance(version, int) or version > REQUEST_VERSION:
            raise UnreadableRequest(f"stored by a newer release (request version {version})")
        speakers = data.get("speakers")
        return TranscriptionRequest(
            model=data.get("model"),
            options=_known(DecodeOptions, data.get("options", {})),
            speakers=SpeakerRequest(
                _known(SpeakerLimits, speakers.get("limits", {})),
                bool(speakers.get("return_embeddings", False)),
            )
            if speakers
            else None,
            encoded=bool(data.get("encoded", True)),
        )
    except UnreadableRequest:
        raise
    except (ValueError, TypeError, AttributeError) as exc:
        raise UnreadableRequest(f"the stored request cannot be read ({exc})") from exc


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
