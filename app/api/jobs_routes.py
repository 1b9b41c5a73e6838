"""/v1/jobs: transcriptions that outlive the request (hours of audio, restarts, webhooks)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from app.api.error_schemas import openai_errors, transcript_content
from app.api.job_events import job_events
from app.api.openai_schemas import diarized, verbose
from app.api.params import Fields, asr_request
from app.api.sse import event_stream
from app.api.uploads import persist_upload
from app.errors import InvalidRequest
from app.jobs.service import JobService
from app.jobs.summary import job_summary
from app.writers import writer_for

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=openai_errors(400, 401, 404, 409, 413, 503)
)

ResultFormat = Literal["json", "text", "srt", "vtt", "tsv", "verbose_json", "diarized_json"]
RESULT_FORMATS: tuple[str, ...] = get_args(ResultFormat)


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


def _f(description: str) -> Any:
    return Form(None, description=description)


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


@router.post("", status_code=202, summary="Submit a transcription job")
async def submit_job(
    request: Request,
    file: Annotated[UploadFile | None, File(description="Audio or video file")] = None,
    model: str | None = _f("Model name or alias; unset = default"),
    language: str | None = _f("Language code; unset = detect"),
    task: str | None = _f("transcribe (default) or translate"),
    prompt: str | None = _f("Text that conditions decoding (alias: initial_prompt)"),
    hotwords: str | None = _f("Words to favour in every window"),
    temperature: str | None = _f("0 (default) = automatic fallback; 0 < t <= 1 = sampling"),
    word_timestamps: str | None = _f("true (default): per-word times"),
    vad_filter: str | None = _f("true (default): skip non-speech"),
    diarize: str | None = _f("true (default): label speakers"),
    num_speakers: str | None = _f("Exact number of speakers"),
    min_speakers: str | None = _f("Minimum number of speakers"),
    max_speakers: str | None = _f("Maximum number of speakers"),
    webhook_url: str | None = _f("POSTed the job summary when it completes or fails"),
) -> JSONResponse:
    """Takes every option of /asr and /v1/audio/transcriptions (form fields or query);
    answers at once with the job. Poll GET /v1/jobs/{id} or wait for the webhook."""
    fields = Fields(request.query_params, await request.form())
    work = asr_request(fields)
    service = _service(request)
    job_id, folder = service.new_upload_folder()
    limit = request.app.state.settings.max_file_size_bytes
    upload = await persist_upload(file, folder, limit, field="file")
    name = (file.filename if file else None) or "audio"
    job = await service.submit(job_id, upload, name, work, fields.text("webhook_url"))
    return JSONResponse(
        job_summary(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


@router.get("", summary="Jobs, newest first")
async def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page (1-100)")] = 20,
    after: Annotated[str | None, Query(description="The last id of the previous page")] = None,
) -> JSONResponse:
    jobs, more = await _service(request).page(limit, after)
    data = [job_summary(j) for j in jobs]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


@router.get("/{job_id}", summary="One job: status, progress, timings, error")
async def get_job(request: Request, job_id: str) -> JSONResponse:
    return JSONResponse(job_summary(await _service(request).get(job_id)))


@router.get(
    "/{job_id}/events",
    summary="A job's progress as server-sent events, until it ends",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events_stream(request: Request, job_id: str) -> StreamingResponse:
    service = _service(request)
    job = await service.get(job_id)  # an unknown id is a 404 before the stream starts
    return event_stream(job_events(service, job))


@router.get(
    "/{job_id}/result",
    summary="A completed job's transcript in any format",
    responses={200: transcript_content()},
)
async def job_result(
    request: Request,
    job_id: str,
    format: Annotated[ResultFormat, Query(description="The transcript's format")] = "json",
    speakers: Annotated[
        str | None,
        Query(description='Names for speaker labels, a JSON object: {"SPEAKER_00": "Alice"}'),
    ] = None,
) -> Response:
    if format not in RESULT_FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(RESULT_FORMATS)}.", param="format")
    names = speaker_renames(speakers)
    _, transcript = await _service(request).result(job_id)
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
    text = writer.write(transcript)
    if format == "json":
        return Response(text, media_type=writer.media_type)
    return PlainTextResponse(text, media_type=writer.media_type)


@router.delete("/{job_id}", summary="Cancel a job and delete its audio and result")
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    job = await _service(request).delete(job_id)
    return JSONResponse({**job_summary(job), "deleted": True})
