"""whisper-asr-webservice contract: POST /asr and POST /detect-language (Speakr, curl).

Parameters come from the query string or form fields alike; unknown ones are ignored, as
whisper-asr-webservice does (Speakr sends a few that only some servers understand).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from app.api.asr_schemas import AsrTranscript
from app.api.openapi_spec import detail_errors, transcript_content
from app.api.params import MAX_SPEAKERS, Fields, asr_request
from app.api.uploads import request_upload, upload_name, upload_route
from app.languages import language_name
from app.run.transcriber import Transcriber
from app.writers import writer_for

log = logging.getLogger(__name__)
router = APIRouter(
    tags=["whisper-asr-webservice"], responses=detail_errors(400, 401, 413, 429, 503)
)


def _q(description: str, **constraints: Any) -> Any:
    """A documented optional query parameter (also accepted as a form field)."""
    return Query(None, description=description, **constraints)


OUTPUTS = ("json", "text", "txt", "srt", "vtt", "tsv")
_TASKS = {"enum": ["transcribe", "translate"]}
_OUTPUT = {"enum": list(OUTPUTS)}
AudioFile = Annotated[UploadFile, File(description="Audio or video file (anything FFmpeg reads)")]


async def _fields(request: Request) -> Fields:
    return Fields(request.query_params, await request.form())


# The parameters below document the contract in /docs and are type-checked by FastAPI; the
# handlers read them through Fields, from the query string or the form alike.
@router.post(
    "/asr",
    summary="Transcribe or translate an audio file",
    responses={200: transcript_content(AsrTranscript)},
    **upload_route("audio_file"),
)
async def asr(
    request: Request,
    audio_file: AudioFile,
    task: str = _q("transcribe (default) or translate (to English)", json_schema_extra=_TASKS),
    language: str = _q("Language code (en, es, ...); unset = detect"),
    model: str = _q("Model name, e.g. base, tiny.en, large-v3; unset = default"),
    initial_prompt: str = _q("Text that conditions the first window"),
    hotwords: str = _q("Words to favour; prepended to every window's prompt"),
    output: str = _q("json (default), text, txt, srt, vtt, tsv", json_schema_extra=_OUTPUT),
    output_format: str = _q("Alias of output", json_schema_extra=_OUTPUT),
    encode: bool = _q("true (default): decode with FFmpeg; false: raw s16le 16 kHz mono PCM"),
    word_timestamps: bool = _q("true (default): per-word times"),
    vad_filter: bool = _q("true (default): skip non-speech with Silero VAD"),
    diarize: bool = _q("true (default): label speakers (alias: enable_diarization)"),
    num_speakers: int = _q("Exact number of speakers (overrides min/max)", ge=1, le=MAX_SPEAKERS),
    min_speakers: int = _q("Minimum number of speakers", ge=1, le=MAX_SPEAKERS),
    max_speakers: int = _q("Maximum number of speakers", ge=1, le=MAX_SPEAKERS),
    return_speaker_embeddings: bool = _q("true: one 256-d vector per speaker"),
) -> Response:
    fields = await _fields(request)
    fmt = fields.choice("output_format", "output", options=OUTPUTS, default="json")
    work = asr_request(fields)
    transcriber: Transcriber = request.app.state.transcriber
    async with request_upload(
        request, audio_file, field="audio_file", encoded=work.encoded
    ) as path:
        transcript = await transcriber.transcribe(path, work, disconnected=request.is_disconnected)
    writer = writer_for(fmt)
    filename = f"{upload_name(audio_file)}.{writer.extension}"
    headers = {
        "Asr-Engine": request.app.state.engine.name,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
    }
    body = await asyncio.to_thread(writer.write, transcript)  # hours of words: off the loop
    return Response(body, media_type=writer.media_type, headers=headers)


@router.post(
    "/detect-language",
    summary="Detect the spoken language",
    **upload_route("audio_file"),
)
async def detect_language(
    request: Request,
    audio_file: AudioFile,
    model: str = _q("Multilingual model to use; unset = default"),
    encode: bool = _q("true (default): decode with FFmpeg; false: raw PCM"),
) -> JSONResponse:
    fields = await _fields(request)
    transcriber: Transcriber = request.app.state.transcriber
    encoded = fields.boolean("encode", default=True)
    # Not counted against the daily allowance: only the first 10 minutes are decoded.
    uploaded = request_upload(
        request, audio_file, field="audio_file", encoded=encoded, charge=False
    )
    async with uploaded as path:
        guess = await transcriber.detect_language(
            path,
            model=fields.text("model"),
            encoded=encoded,
            disconnected=request.is_disconnected,
        )
    return JSONResponse(
        {
            "detected_language": language_name(guess.code),
            "language_code": guess.code,
            "confidence": round(guess.probability, 4),
        }
    )
