"""The JSON that /asr (output=json) and a job's result (format=json) answer with: the
whisper-asr-webservice / whisperX document that app/writers.py AsrJsonWriter writes. Declared
here for the OpenAPI spec; schemathesis checks real answers against it."""

from __future__ import annotations

from pydantic import BaseModel


class AsrWord(BaseModel):
    word: str
    start: float
    end: float
    score: float
    speaker: str | None = None


class AsrSegment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    words: list[AsrWord] | None = None
    speaker: str | None = None


class AsrTranscript(BaseModel):
    text: list[AsrSegment]
    """The segments again: whisper-asr-webservice's legacy shape."""
    language: str
    segments: list[AsrSegment]
    word_segments: list[AsrWord]
    duration: float
    model: str
    word_timestamps: str | None
    """Where word times came from (whisper-dtw, wav2vec2, pocketsphinx), or null when not
    requested."""
    diarization: str | None
    """The pipeline that labelled speakers, or null when speakers were not labelled."""
    speakers: list[str]
    notes: list[str]
    """Degradations worth knowing (a stage that was skipped or fell back)."""
    speaker_embeddings: dict[str, list[float]] | None = None
