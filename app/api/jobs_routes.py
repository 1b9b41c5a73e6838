"""/v1/jobs: transcriptions that outlive the request (hours of audio, restarts, webhooks)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from app.api.asr_schemas import AsrTranscript
from app.api.auth import tenant_of
from app.api.event_schemas import JobDeleted, JobEvent, JobList, JobObject, sse_content
from app.api.job_events import job_events
from app.api.openai_schemas import (
    DiarizedTranscription,
    VerboseTranscription,
    diarized,
    verbose,
)
from app.api.openapi_spec import (
    json_query_parameter,
    openai_errors,
    transcript_content,
)
from app.api.params import MAX_SPEAKERS, Fields, asr_request
from app.api.sse import event_stream
from app.api.uploads import persist_upload, upload_route
from app.errors import InvalidRequest
from app.jobs.service import JobService
from app.jobs.summary import job_summary
from app.writers import writer_for

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=openai_errors(400, 401, 404, 409, 413, 429, 503)
)

ResultFormat = Literal["json", "text", "srt", "vtt", "tsv", "verbose_json", "diarized_json"]
RESULT_FORMATS: tuple[str, ...] = get_args(ResultFormat)


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


def _f(description: str, **constraints: Any) -> Any:
    return Form(None, description=description, **constraints)


_SPEAKER_NAMES_SCHEMA = {
    "type": "object",
    "maxProperties": 100,
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
}
"""What speaker_renames accepts, for the spec (`speakers` is declared there by hand because
its value is JSON)."""


def speaker_renames(text: str | None) -> dict[str, str]:
    """`speakers=` of a result: a JSON object of label -> name, checked."""
    if not text:
        return {}
    try:
        names = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"speakers is not JSON ({exc}).", param="speakers") from exc
    if not (
        isinstance(names, dict)
        and len(names) <= 100
        and all(isinstance(k, str) and isinstance(v, str) for k, v in names.items())
        and all(0 < len(v.strip()) <= 100 for v in names.values())
    ):
        raise InvalidRequest(
            "speakers must be a JSON object of at most 100 labels and names of 1-100 "
            'characters, e.g. {"SPEAKER_00": "Alice"}.',
            param="speakers",
        )
    return {k: v.strip() for k, v in names.items()}


_JOB_LINKS = {
    name: {"operationId": operation, "parameters": {"job_id": "$response.body#/id"}}
    for name, operation in {
        "GetJob": "get_job",
        "GetJobResult": "job_result",
        "GetJobEvents": "job_events_stream",
        "CancelJob": "cancel_job",
        "DeleteJob": "delete_job",
    }.items()
}
"""How a client (and schemathesis's stateful tests) goes from a new job to its operations."""


@router.post(
    "",
    status_code=202,
    summary="Submit a transcription job",
    responses={202: {"model": JobObject, "links": _JOB_LINKS}},
    **upload_route("file"),
)
async def submit_job(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio or video file")],
    model: str = _f("Model name or alias; unset = default"),
    language: str = _f("Language code; unset = detect"),
    task: str = _f(
        "transcribe (default) or translate", json_schema_extra={"enum": ["transcribe", "translate"]}
    ),
    prompt: str = _f("Text that conditions decoding (alias: initial_prompt)"),
    hotwords: str = _f("Words to favour in every window"),
    temperature: float = _f("0 (default) = automatic fallback; 0 < t <= 1 = sampling", ge=0, le=1),
    word_timestamps: bool = _f("true (default): per-word times"),
    vad_filter: bool = _f("true (default): skip non-speech"),
    diarize: bool = _f("true (default): label speakers"),
    num_speakers: int = _f("Exact number of speakers", ge=1, le=MAX_SPEAKERS),
    min_speakers: int = _f("Minimum number of speakers", ge=1, le=MAX_SPEAKERS),
    max_speakers: int = _f("Maximum number of speakers", ge=1, le=MAX_SPEAKERS),
    webhook_url: str = _f("POSTed the job summary when it completes or fails"),
) -> JSONResponse:
    """Takes every option of /asr and /v1/audio/transcriptions (form fields or query);
    answers at once with the job. Poll GET /v1/jobs/{id} or wait for the webhook."""
    fields = Fields(request.query_params, await request.form())
    work = asr_request(fields)
    service, tenant = _service(request), tenant_of(request.scope)
    await service.check_quota(tenant)  # before the upload is copied or decoded
    job_id, folder = service.new_upload_folder()
    limit = request.app.state.settings.max_file_size_bytes
    upload = await persist_upload(file, folder, limit, field="file")
    name = file.filename or "audio"
    job = await service.submit(job_id, upload, name, work, fields.text("webhook_url"), tenant)
    return JSONResponse(
        job_summary(job, tenant), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


@router.get("", summary="Jobs, newest first", responses={200: {"model": JobList}})
async def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page (1-100)")] = 20,
    after: Annotated[str | None, Query(description="The last id of the previous page")] = None,
) -> JSONResponse:
    tenant = tenant_of(request.scope)
    jobs, more = await _service(request).page(limit, after, tenant)
    data = [job_summary(j, tenant) for j in jobs]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


@router.get(
    "/{job_id}",
    summary="One job: status, progress, timings, error",
    operation_id="get_job",
    responses={200: {"model": JobObject}},
)
async def get_job(request: Request, job_id: str) -> JSONResponse:
    tenant = tenant_of(request.scope)
    return JSONResponse(job_summary(await _service(request).get(job_id, tenant), tenant))


@router.get(
    "/{job_id}/events",
    summary="A job's progress as server-sent events, until it ends",
    operation_id="job_events_stream",
    response_class=StreamingResponse,
    responses={200: {"content": sse_content(JobEvent)}},
)
async def job_events_stream(request: Request, job_id: str) -> StreamingResponse:
    service, tenant = _service(request), tenant_of(request.scope)
    job = await service.get(job_id, tenant)  # an unknown id is a 404 before the stream starts
    return event_stream(job_events(service, job, tenant))


@router.get(
    "/{job_id}/result",
    summary="A completed job's transcript in any format",
    operation_id="job_result",
    responses={
        200: transcript_content(AsrTranscript | VerboseTranscription | DiarizedTranscription)
    },
    openapi_extra=json_query_parameter(
        "speakers",
        'Names for speaker labels, a JSON object: {"SPEAKER_00": "Alice"}',
        _SPEAKER_NAMES_SCHEMA,
    ),
)
async def job_result(
    request: Request,
    job_id: str,
    format: Annotated[ResultFormat, Query(description="The transcript's format")] = "json",
    speakers: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Response:
    if format not in RESULT_FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(RESULT_FORMATS)}.", param="format")
    names = speaker_renames(speakers)
    _, transcript = await _service(request).result(job_id, tenant_of(request.scope))
    if names:
        transcript = transcript.renamed(names)
        if format == "diarized_json":  # the names themselves, not letters in their place
            transcript = replace(transcript, speaker_names={n: n for n in names.values()})
    if format == "verbose_json":
        body = verbose(transcript, segments=True, words=bool(transcript.words))
        return JSONResponse(body.model_dump(exclude_none=True))
    if format == "diarized_json":
        return JSONResponse(diarized(transcript, []).model_dump(exclude_none=True))
    writer = writer_for(format)
    text = await asyncio.to_thread(writer.write, transcript)  # hours of words: off the loop
    if format == "json":
        return Response(text, media_type=writer.media_type)
    return PlainTextResponse(text, media_type=writer.media_type)


@router.post(
    "/{job_id}/cancel",
    summary="Stop a queued or running job; its record stays, saying cancelled",
    operation_id="cancel_job",
    responses={200: {"model": JobObject}},
)
async def cancel_job(request: Request, job_id: str) -> JSONResponse:
    tenant = tenant_of(request.scope)
    return JSONResponse(job_summary(await _service(request).cancel(job_id, tenant), tenant))


@router.delete(
    "/{job_id}",
    summary="Forget a job: cancel it if it runs, delete its record, audio and result",
    operation_id="delete_job",
    responses={200: {"model": JobDeleted}},
)
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    job = await _service(request).delete(job_id, tenant_of(request.scope))
    return JSONResponse({"id": job.id, "object": "transcription.job.deleted", "deleted": True})
