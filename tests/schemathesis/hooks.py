"""Schemathesis hooks (SCHEMATHESIS_HOOKS=hooks, with this folder on PYTHONPATH): the file
part of every upload is real speech, so schema-valid requests reach the models and their
2xx answers are checked against the spec too, not only the 400 for undecodable bytes."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np
import schemathesis
from hypothesis import strategies as st

CLIP = Path(__file__).resolve().parent.parent / "fixtures" / "jfk_style.flac"
SECONDS = 3.0


def speech_wav(path: Path = CLIP, seconds: float = SECONDS) -> bytes:
    """The first `seconds` of a fixture as 16 kHz mono 16-bit WAV."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    pcm = np.concatenate(chunks)[: int(seconds * 16000)]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


schemathesis.openapi.media_type("audio/wav", st.just(speech_wav()))
