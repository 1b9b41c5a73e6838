"""OpenAI-compatible /v1 audio and model endpoints, usable by the official SDK unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.api.event_schemas import TRANSCRIPTION_EVENTS, sse_content
from app.api.openai_schemas import (
    DiarizedTranscription,
    ModelList,
    ModelObject,
    TranscriptionJson,
    VerboseTranscription,
    diarized,
    usage_of,
    verbose,
)
from app.api.openapi_spec import openai_errors, text_content
from app.api.params import Fields, form_list
from app.api.speaker_references import FORM_PART_BYTES, MAX_KNOWN_SPEAKERS, known_speakers
from app.api.transcription_stream import STREAM_FORMATS, stream_response, transcription_events
from app.api.uploads import request_upload, upload_route
from app.domain import DecodeOptions, SpeakerRequest, Task, Transcript, TranscriptionRequest
from app.errors import InvalidRequest, NotFound, UnsupportedParameter
from app.pipeline.asr import TextSink
from app.run.transcriber import Transcriber
from app.writers import SrtWriter, VttWriter

router = APIRouter(
    prefix="/v1", tags=["OpenAI-compatible"], responses=openai_errors(400, 401, 404, 413, 429, 503)
)

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
GRANULARITIES = ("word", "segment")
_COMMON_FIELDS = {
    "file",
    "model",
    "prompt",
    "response_format",
    "temperature",
    "stream",
    "chunking_strategy",
    "language",
}
_TRANSCRIBE_FIELDS = _COMMON_FIELDS | {
    "timestamp_granularities[]",
    "timestamp_granularities",
    "include[]",
    "include",
    "known_speaker_names[]",
    "known_speaker_names",
    "known_speaker_references[]",
    "known_speaker_references",
    "diarize",  # an extension (OpenASR's, sent by Speakr's openasr connector)
}


_AUDIO_CONTENT = {
    "model": TranscriptionJson | VerboseTranscription | DiarizedTranscription,
    "content": {**text_content("text/plain"), **sse_content(*TRANSCRIPTION_EVENTS)},
}
"""A transcription's 200: JSON (json, verbose_json, diarized_json), plain text (text, srt,
vtt) or server-sent events (stream=true)."""


def _f(description: str = "", **constraints: Any) -> Any:
    return Form(None, description=description, **constraints)


def _one_of(*values: str) -> dict[str, Any]:
    """An enum for the spec; the handler compares case-insensitively (Fields.choice)."""
    return {"json_schema_extra": {"enum": list(values)}}


def _reject_unknown(fields: Fields, allowed: set[str]) -> None:
    for key in sorted(fields.keys() - allowed):
        raise InvalidRequest(f"Unrecognized request argument supplied: {key}", param=key)


def _granularities(form: Any) -> set[str]:
    chosen = set(form_list(form, "timestamp_granularities"))
    for value in chosen - set(GRANULARITIES):
        raise InvalidRequest(
            f"Invalid timestamp granularity '{value}': use 'word' and/or 'segment'.",
            param="timestamp_granularities",
        )
    return chosen


def _check_unsupported(fields: Fields, form: Any) -> None:
    include = [str(v) for v in (*form.getlist("include[]"), *form.getlist("include")) if v]
    if include:
        raise UnsupportedParameter(
            f"include={include} is not supported by this server.", param="include"
        )
    strategy = fields.text("chunking_strategy")
    if strategy not in (None, "auto"):
        raise UnsupportedParameter(
            "Only chunking_strategy='auto' is supported (speech is always split by VAD).",
            param="chunking_strategy",
        )


async def _run(request: Request, file: UploadFile | None, task: Task) -> Response:
    form = await request.form(max_part_size=FORM_PART_BYTES)
    fields = Fields({}, form)
    _reject_unknown(fields, _TRANSCRIBE_FIELDS if task == "transcribe" else _COMMON_FIELDS)
    _check_unsupported(fields, form)
    fmt = fields.choice("response_format", options=RESPONSE_FORMATS, default="json")
    granularities = _granularities(form) if task == "transcribe" else set()
    if granularities and fmt != "verbose_json":
        raise InvalidRequest(
            "timestamp_granularities requires response_format=verbose_json.",
            param="timestamp_granularities",
        )
    if fmt == "diarized_json" and task != "transcribe":
        raise InvalidRequest(
            "diarized_json is only available for transcriptions.", param="response_format"
        )
    stream = fields.boolean("stream", default=False)
    if stream and fmt not in STREAM_FORMATS:
        raise InvalidRequest(
            f"stream=true supports response_format {', '.join(STREAM_FORMATS)}; "
            f"'{fmt}' is not streamed.",
            param="stream",
        )
    known_names, known_voices = await known_speakers(form, fmt)
    diarize = fmt == "diarized_json" or fields.boolean("diarize", default=False)
    options = DecodeOptions(
        task=task,
        language=fields.language(),
        initial_prompt=fields.text("prompt"),
        temperature=fields.number("temperature", minimum=0.0, maximum=1.0),
        word_timestamps="word" in granularities,
    )
    transcriber: Transcriber = request.app.state.transcriber
    work = TranscriptionRequest(
        model=fields.text("model"),
        options=options,
        speakers=SpeakerRequest(known=known_voices) if diarize else None,
    )
    if stream:
        resources = AsyncExitStack()
        try:
            # An unreadable file or a spent allowance is still a plain 4xx, not an event.
            path = await resources.enter_async_context(request_upload(request, file, field="file"))
        except BaseException:
            await resources.aclose()
            raise

        def run(on_text: TextSink) -> Coroutine[Any, Any, Transcript]:
            return transcriber.transcribe(path, work, on_text=on_text)

        events = transcription_events(run, resources, fmt, known_names)
        return await stream_response(request.url.path, events)
    async with request_upload(request, file, field="file") as path:
        transcript = await transcriber.transcribe(path, work, disconnected=request.is_disconnected)
    if fmt == "diarized_json":
        return JSONResponse(diarized(transcript, known_names).model_dump(exclude_none=True))
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt == "srt":
        return PlainTextResponse(await asyncio.to_thread(SrtWriter().write, transcript))
    if fmt == "vtt":
        return PlainTextResponse(await asyncio.to_thread(VttWriter().write, transcript))
    if fmt == "verbose_json":
        body = verbose(
            transcript,
            segments=not granularities or "segment" in granularities,
            words="word" in granularities,
        )
        return JSONResponse(body.model_dump(exclude_none=True))
    usage = usage_of(transcript) if task == "transcribe" else None
    return JSONResponse(
        TranscriptionJson(text=transcript.text, usage=usage).model_dump(exclude_none=True)
    )


# Array fields as OpenAI sends them (name[]); module-level because a list default is mutable.
_GRANULARITIES_FIELD = _f(
    alias="timestamp_granularities[]",
    description="word and/or segment (needs verbose_json)",
    json_schema_extra={"items": {"type": "string", "enum": list(GRANULARITIES)}},
)
_NAMES_FIELD = _f(
    alias="known_speaker_names[]",
    description="Names of known speakers: paired with known_speaker_references[] "
    "samples, or alone, given to speakers in order of first appearance "
    "(needs diarized_json)",
)
_REFERENCES_FIELD = _f(
    alias="known_speaker_references[]",
    description="Data URLs of 2-10 s voice samples, one per known_speaker_names[] "
    "entry (at most 4); a speaker whose voice matches a sample gets its name, the "
    "others letters (needs diarized_json)",
    json_schema_extra={
        "maxItems": MAX_KNOWN_SPEAKERS,
        "items": {"type": "string", "pattern": "^data:[^,]*;base64,"},
    },
)

AudioFile = Annotated[UploadFile, File(description="Audio file (any FFmpeg format)")]
_TEMPERATURE = "0 (default) = automatic fallback; 0 < t <= 1 = sampling"


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    responses={200: _AUDIO_CONTENT},
    # FastAPI parses the form before the handler: with Starlette's 1 MiB part limit, a
    # voice sample of 1-3 MiB was refused before the handler's own limit was asked.
    form_limits={"max_part_size": FORM_PART_BYTES},
    **upload_route("file"),
)
async def transcriptions(
    request: Request,
    file: AudioFile,
    model: str = _f("whisper-1 or a model name such as base, tiny.en, large-v3"),
    language: str = _f("ISO-639-1 code of the spoken language; unset = detect"),
    prompt: str = _f("Text that conditions the transcription"),
    response_format: str = _f(
        "json, text, srt, vtt, verbose_json or diarized_json", **_one_of(*RESPONSE_FORMATS)
    ),
    temperature: float = _f(_TEMPERATURE, ge=0, le=1),
    timestamp_granularities: list[str] = _GRANULARITIES_FIELD,
    known_speaker_names: list[str] = _NAMES_FIELD,
    known_speaker_references: list[str] = _REFERENCES_FIELD,
    stream: bool = _f(
        "true = server-sent events: transcript.text.delta per decoded window, "
        "transcript.text.segment (diarized_json), then transcript.text.done"
    ),
    chunking_strategy: str = _f("auto only: speech is always split by VAD", **_one_of("auto")),
    diarize: bool = _f(
        "Extension (as OpenASR's): true = label speakers; verbose_json segments and words "
        "then carry `speaker` (SPEAKER_00, ...). diarized_json always labels them."
    ),
) -> Response:
    # The parameters above document the contract in /docs; _run reads the form itself so
    # that aliases, unknown fields and unsupported values get OpenAI's own error messages.
    return await _run(request, file, "transcribe")


@router.post(
    "/audio/translations",
    summary="Translate audio to English (OpenAI-compatible)",
    responses={200: _AUDIO_CONTENT},
    **upload_route("file"),
)
async def translations(
    request: Request,
    file: AudioFile,
    model: str = _f("whisper-1 or a multilingual model name"),
    prompt: str = _f("English text that conditions the translation"),
    response_format: str = _f(
        "json, text, srt, vtt or verbose_json",
        **_one_of("json", "text", "srt", "vtt", "verbose_json"),
    ),
    temperature: float = _f(_TEMPERATURE, ge=0, le=1),
    stream: bool = _f(
        "true = server-sent events: transcript.text.delta per decoded window, then "
        "transcript.text.done (json and text only)"
    ),
) -> Response:
    return await _run(request, file, "translate")


def _model_objects_sync(registry: Any) -> dict[str, ModelObject]:
    names = [*registry.alias_names(), *registry.available_names()]
    return {
        name: ModelObject(id=name, created=registry.created(name), owned_by="whisperx-service")
        for name in names
    }


async def _model_objects(request: Request) -> dict[str, ModelObject]:
    # available_names() may probe the hub: keep it off the event loop.
    return await asyncio.to_thread(_model_objects_sync, request.app.state.registry)


@router.get("/models", response_model=ModelList, summary="Models this server can serve")
async def list_models(request: Request) -> ModelList:
    return ModelList(data=list((await _model_objects(request)).values()))


@router.get("/models/{model_id:path}", response_model=ModelObject, summary="One model")
async def retrieve_model(request: Request, model_id: str) -> ModelObject:
    found = (await _model_objects(request)).get(model_id)
    if found is None:
        raise NotFound(
            f"The model '{model_id}' does not exist on this server.",
            param="model",
            code="model_not_found",
        )
    return found
