"""known_speaker_names[] and known_speaker_references[] of OpenAI's transcription form.

A reference is a data URL of a 2-10 s voice sample in any format `file` accepts. Everything
is checked, and the samples decoded, before any model runs: four samples of at most ten
seconds are the most a request can make the server embed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import tempfile
from pathlib import Path
from typing import Any

from app.api.params import form_list
from app.domain import Audio, KnownSpeaker
from app.errors import AudioTooLong, InvalidRequest
from app.pipeline.decode import decode_to_pcm

MAX_KNOWN_SPEAKERS = 4
SAMPLE_SECONDS = (2.0, 10.0)
_SLACK_S = 0.1  # encoders pad a frame or two; a "10 s" sample may decode to 10.02 s
MAX_SAMPLE_BYTES = 3 * 1024 * 1024
"""Encoded bytes of one sample: 10 s of 48 kHz stereo 16-bit WAV is 1.9 MB."""
FORM_PART_BYTES = MAX_SAMPLE_BYTES * 4 // 3 + 1024
"""The largest form field the endpoint reads: one sample, base64 and its data: header."""
_PARAM = "known_speaker_references"


def _payload(index: int, url: str) -> bytes:
    head, comma, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64") and comma):
        raise InvalidRequest(
            f"known_speaker_references[{index}] must be a base64 data URL "
            "(data:audio/wav;base64,...).",
            param=_PARAM,
        )
    if len(data) > FORM_PART_BYTES:
        raise InvalidRequest(
            f"known_speaker_references[{index}] is larger than {MAX_SAMPLE_BYTES // 1048576} MiB.",
            param=_PARAM,
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(
            f"known_speaker_references[{index}] is not valid base64 ({exc}).", param=_PARAM
        ) from exc


def _decode(index: int, payload: bytes) -> Audio:
    shortest, longest = SAMPLE_SECONDS
    with tempfile.TemporaryDirectory(prefix="asr-reference-") as folder:
        src, dst = Path(folder) / "sample", Path(folder) / "sample.pcm"
        src.write_bytes(payload)
        try:
            audio = decode_to_pcm(src, dst, max_duration_s=longest + _SLACK_S).audio()
        except AudioTooLong as exc:
            raise InvalidRequest(
                f"known_speaker_references[{index}] is longer than {longest:g} s; samples must "
                f"last {shortest:g} to {longest:g} s.",
                param=_PARAM,
            ) from exc
        except InvalidRequest as exc:  # unreadable or empty: say which sample
            raise InvalidRequest(
                f"known_speaker_references[{index}]: {exc.message}", param=_PARAM
            ) from exc
    seconds = audio.duration_ms / 1000
    if seconds < shortest - _SLACK_S:
        raise InvalidRequest(
            f"known_speaker_references[{index}] lasts {seconds:.1f} s; samples must last "
            f"{shortest:g} to {longest:g} s.",
            param=_PARAM,
        )
    return audio


async def known_speakers(form: Any, fmt: str) -> tuple[list[str], tuple[KnownSpeaker, ...]]:
    """(names, samples): names alone label speakers in order of first appearance; with
    samples, each name goes to the speaker whose voice its sample matches."""
    names = form_list(form, "known_speaker_names")
    references = form_list(form, _PARAM)
    if (names or references) and fmt != "diarized_json":
        param = _PARAM if references else "known_speaker_names"
        raise InvalidRequest(f"{param} requires response_format=diarized_json.", param=param)
    if not references:
        return names, ()
    if len(references) != len(names):
        raise InvalidRequest(
            f"Send one known_speaker_names[] entry per known_speaker_references[] sample "
            f"(got {len(names)} names and {len(references)} samples).",
            param=_PARAM,
        )
    if len(references) > MAX_KNOWN_SPEAKERS:
        raise InvalidRequest(
            f"At most {MAX_KNOWN_SPEAKERS} known speakers are supported (got {len(references)}).",
            param=_PARAM,
        )
    payloads = [_payload(i, url) for i, url in enumerate(references)]
    samples = await asyncio.to_thread(lambda: [_decode(i, p) for i, p in enumerate(payloads)])
    return names, tuple(KnownSpeaker(n, s) for n, s in zip(names, samples, strict=True))
