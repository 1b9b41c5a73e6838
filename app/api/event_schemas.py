"""What the service's JSON objects about jobs and its server-sent events look like, for the
OpenAPI spec: the job object (app/jobs/summary.py builds it) and each event of a streamed
transcription (app/api/transcription_stream.py) and of a job's progress (app/api/job_events.py).
schemathesis checks real answers against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from app.api.openai_schemas import DiarizedSegment, Usage
from app.api.openapi_spec import OpenAIErrorBody

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


class JobProgress(BaseModel):
    fraction: float
    """Of the whole job, 0-1."""
    stage: str
    """queued, starting, decode, vad, transcribe, align, diarize, done."""


class JobWebhook(BaseModel):
    url: str
    status: str | None
    attempts: int
    error: str | None


class JobObject(BaseModel):
    id: str
    object: Literal["transcription.job"]
    status: JobStatus
    created_at: float
    """Unix seconds, as are started_at and finished_at."""
    started_at: float | None
    finished_at: float | None
    filename: str
    progress: JobProgress
    attempts: int
    audio_duration_s: float | None
    error: str | None
    result_url: str | None
    webhook: JobWebhook | None


class JobList(BaseModel):
    object: Literal["list"]
    data: list[JobObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class JobDeleted(BaseModel):
    id: str
    object: Literal["transcription.job.deleted"]
    deleted: Literal[True]


class JobGone(BaseModel):
    id: str


class JobEvent(BaseModel):
    """One event of GET /v1/jobs/{id}/events."""

    type: Literal["job.progress", "job.completed", "job.failed", "job.cancelled", "job.deleted"]
    job: JobObject | JobGone


class TextDelta(BaseModel):
    type: Literal["transcript.text.delta"]
    delta: str


class TextDone(BaseModel):
    type: Literal["transcript.text.done"]
    text: str
    usage: Usage


class StreamErrorBody(OpenAIErrorBody):
    status: int | None = None


class StreamError(BaseModel):
    """A failure after the stream started (before it, the answer is an ordinary error)."""

    error: StreamErrorBody


TRANSCRIPTION_EVENTS = (TextDelta, DiarizedSegment, TextDone, StreamError)
EVENT_MODELS: tuple[type[BaseModel], ...] = (*TRANSCRIPTION_EVENTS, JobEvent)


def sse_content(*models: type[BaseModel]) -> dict[str, Any]:
    """A text/event-stream whose every event's data is JSON, one of `models` (OpenAPI 3.1:
    the schema describes one event; the models are added to components by the app)."""
    data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {
            "anyOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
        },
    }
    event = {"type": "object", "properties": {"data": data, "event": {"type": "string"}}}
    return {"text/event-stream": {"schema": {**event, "required": ["data"]}}}
