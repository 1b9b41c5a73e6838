"""OpenAI's audio response shapes, field for field (what the official SDK parses)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel

from app.domain import Transcript
from app.languages import language_name
from app.writers import seconds


class Usage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: int


class TranscriptionJson(BaseModel):
    text: str
    usage: Usage | None = None


class VerboseSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    speaker: str | None = None
    """Extension: with diarize=true, the segment's speaker (SPEAKER_00, ...)."""


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float
    speaker: str | None = None
    """Extension: with diarize=true, the word's speaker."""


class VerboseTranscription(BaseModel):
    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment] | None = None
    words: list[VerboseWord] | None = None
    usage: Usage | None = None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


def usage_of(transcript: Transcript) -> Usage:
    return Usage(seconds=math.ceil(transcript.duration_ms / 1000))


def verbose(transcript: Transcript, *, segments: bool, words: bool) -> VerboseTranscription:
    return VerboseTranscription(
        task=transcript.task,
        language=language_name(transcript.language),
        duration=seconds(transcript.duration_ms),
        text=transcript.text,
        segments=[
            VerboseSegment(
                id=s.id,
                seek=s.seek,
                start=seconds(s.start_ms),
                end=seconds(s.end_ms),
                text=s.text,
                tokens=list(s.tokens),
                temperature=s.temperature,
                avg_logprob=s.avg_logprob,
                compression_ratio=s.compression_ratio,
                no_speech_prob=s.no_speech_prob,
                speaker=s.speaker,
            )
            for s in transcript.segments
        ]
        if segments
        else None,
        words=[
            VerboseWord(
                word=w.text.strip(),
                start=seconds(w.start_ms),
                end=seconds(w.end_ms),
                speaker=w.speaker,
            )
            for w in transcript.words
        ]
        if words
        else None,
        usage=usage_of(transcript) if transcript.task == "transcribe" else None,
    )


class DiarizedSegment(BaseModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    speaker: str
    text: str


class DiarizedTranscription(BaseModel):
    """OpenAI's TranscriptionDiarized, plus `notes` when diarization degraded."""

    task: Literal["transcribe"] = "transcribe"
    duration: float
    text: str
    segments: list[DiarizedSegment]
    usage: Usage | None = None
    notes: list[str] | None = None


def speaker_names(
    speakers: list[str], known: list[str], matched: dict[str, str] | None = None
) -> dict[str, str]:
    """Speaker labels -> what diarized_json shows. With voice samples (`matched` not None):
    the names their voices matched, and letters A, B, ... for the other speakers in order of
    first appearance. Without: `known` names in order of first appearance, then letters. A
    letter that is one of the known names is skipped, so a speaker who matched no sample
    never carries a known speaker's name (Speakr passes the letters of an earlier chunk as
    the known names of the next)."""
    letters = _letters(taken=set(known) | set((matched or {}).values()))
    if matched is not None:
        return {label: matched.get(label) or next(letters) for label in speakers}
    return {
        label: known[index] if index < len(known) else next(letters)
        for index, label in enumerate(speakers)
    }


def _letters(taken: set[str]) -> Iterator[str]:
    """A, B, ..., Z, AA, AB, ... without the names in `taken`."""
    for index in itertools.count(1):
        label = ""
        while index:
            index, rest = divmod(index - 1, 26)
            label = chr(ord("A") + rest) + label
        if label not in taken:
            yield label


def diarized(transcript: Transcript, known_names: list[str]) -> DiarizedTranscription:
    names = speaker_names(transcript.speakers, known_names, transcript.speaker_names)
    return DiarizedTranscription(
        duration=seconds(transcript.duration_ms),
        text=transcript.text,
        segments=[
            DiarizedSegment(
                id=f"seg_{s.id}",
                start=seconds(s.start_ms),
                end=seconds(s.end_ms),
                speaker=names.get(s.speaker or "", "unknown"),
                text=s.text.strip(),
            )
            for s in transcript.segments
        ],
        usage=usage_of(transcript),
        notes=list(transcript.notes) or None,
    )
