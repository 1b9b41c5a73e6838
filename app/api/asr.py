"""whisper-asr-webservice contract: POST /asr and POST /detect-language (Speakr, curl).

Parameters come from the query string or form fields alike; unknown ones are ignored, as
whisper-asr-webservice does (Speakr sends a few that only some servers understand).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from app.api.error_schemas import detail_errors, transcript_content
from app.api.params import Fields, asr_request
from app.api.uploads import saved_upload, upload_name
from app.languages import language_name
from app.services.transcriber import Transcriber
from app.writers import writer_for

log = logging.getLogger(__name__)
router = APIRouter(tags=["whisper-asr-webservice"], responses=detail_errors(400, 401, 413, 503))


def _q(description: str) -> Any:
    """A documented optional query parameter (also accepted as a form field)."""
    return Query(None, description=description)


OUTPUTS = ("json", "text", "txt", "srt", "vtt", "tsv")


async def _fields(request: Request) -> Fields:
    return Fields(request.query_params, await request.form())


@router.post(
    "/asr",
    summary="Transcribe or translate an audio file",
    responses={200: transcript_content()},
)
async def asr(
    request: Request,
    audio_file: Annotated[UploadFile | None, File(description="Audio or video file")] = None,
    task: str | None = _q("transcribe (default) or translate (to English)"),
    language: str | None = _q("Language code (en, es, ...); unset = detect"),
    model: str | None = _q("Model name, e.g. base, tiny.en, large-v3; unset = default"),
    initial_prompt: str | None = _q("Text that conditions the first window"),
    hotwords: str | None = _q("Words to favour; prepended to every window's prompt"),
    output: str | None = _q("json (default), text, txt, srt, vtt, tsv"),
    output_format: str | None = _q("Alias of output"),
    encode: str | None = _q("true (default): decode with FFmpeg; false: raw s16le 16 kHz mono PCM"),
    word_timestamps: str | None = _q("true (default): per-word times"),
    vad_filter: str | None = _q("true (default): skip non-speech with Silero VAD"),
    diarize: str | None = _q("true (default): label speakers (alias: enable_diarization)"),
    num_speakers: str | None = _q("Exact number of speakers (overrides min/max)"),
    min_speakers: str | None = _q("Minimum number of speakers"),
    max_speakers: str | None = _q("Maximum number of speakers"),
    return_speaker_embeddings: str | None = _q("true: one 256-d vector per speaker"),
) -> Response:
    fields = await _fields(request)
    fmt = fields.choice("output_format", "output", options=OUTPUTS, default="json")
    work = asr_request(fields)
    transcriber: Transcriber = request.app.state.transcriber
    settings = request.app.state.settings
    async with saved_upload(audio_file, settings.max_file_size_bytes, field="audio_file") as path:
        transcript = await transcriber.transcribe(path, work, disconnected=request.is_disconnected)
    writer = writer_for(fmt)
    filename = f"{upload_name(audio_file)}.{writer.extension}"
    headers = {
        "Asr-Engine": request.app.state.engine.name,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
    }
    body = writer.write(transcript)
    return Response(body, media_type=writer.media_type, headers=headers)


@router.post("/detect-language", summary="Detect the spoken language")
async def detect_language(
    request: Request,
    audio_file: Annotated[UploadFile | None, File(description="Audio or video file")] = None,
    model: str | None = _q("Multilingual model to use; unset = default"),
    encode: str | None = _q("true (default): decode with FFmpeg; false: raw PCM"),
) -> JSONResponse:
    fields = await _fields(request)
    transcriber: Transcriber = request.app.state.transcriber
    settings = request.app.state.settings
    async with saved_upload(audio_file, settings.max_file_size_bytes, field="audio_file") as path:
        guess = await transcriber.detect_language(
            path,
            model=fields.text("model"),
            encoded=fields.boolean("encode", default=True),
            disconnected=request.is_disconnected,
        )
    return JSONResponse(
        {
            "detected_language": language_name(guess.code),
            "language_code": guess.code,
            "confidence": round(guess.probability, 4),
        }
    )
