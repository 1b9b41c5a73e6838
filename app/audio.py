"""Decode any FFmpeg-readable upload to 16 kHz mono float32, with errors a client can act on.

PyAV ships FFmpeg's libraries inside its wheel, so no system ffmpeg is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from app.domain import Audio
from app.errors import AudioDecodeError, EmptyUpload

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# A file whose decodable audio falls this far short of what its header declares is
# reported as truncated instead of silently transcribing a part of it.
_TRUNCATION_RATIO = 0.9
_TRUNCATION_SLACK_S = 1.0


def decode_file(path: Path, *, encoded: bool = True) -> Audio:
    """Decode `path`. With `encoded=False` the bytes are raw 16-bit LE mono PCM at 16 kHz
    (whisper-asr-webservice's `encode=false`)."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyUpload("The uploaded file is empty.", param="file")
    if not encoded:
        return _decode_raw_pcm(path, size)
    return _decode_container(path)


def _decode_raw_pcm(path: Path, size: int) -> Audio:
    if size % 2:
        raise AudioDecodeError(
            "encode=false expects raw 16-bit little-endian mono PCM at 16 kHz, but the "
            f"upload has an odd number of bytes ({size}).",
            param="encode",
        )
    pcm = np.fromfile(path, dtype="<i2")
    return Audio(pcm.astype(np.float32) / 32768.0, SAMPLE_RATE)


def _decode_container(path: Path) -> Audio:
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(
            f"The file could not be read as audio or video ({_reason(exc)}). Supported: "
            "mp3, wav, m4a, flac, aac, ogg, wma, mp4, avi, mov, mkv, webm, amr, 3gp.",
            param="file",
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioDecodeError("The file has no audio track.", param="file")
        stream = container.streams.audio[0]
        declared_s = _wav_declared_duration(path) or _declared_duration(container, stream)
        chunks = _decode_stream(container, stream)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    decoded_s = len(samples) / SAMPLE_RATE
    if len(samples) == 0:
        raise AudioDecodeError("No audio could be decoded from the file.", param="file")
    if declared_s and decoded_s < declared_s * _TRUNCATION_RATIO - _TRUNCATION_SLACK_S:
        raise AudioDecodeError(
            f"The file looks truncated: its header declares {declared_s:.1f} s of audio but "
            f"only {decoded_s:.1f} s could be decoded.",
            param="file",
        )
    return Audio(samples, SAMPLE_RATE)


def _decode_stream(
    container: av.container.InputContainer, stream: av.AudioStream
) -> list[np.ndarray]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    decoded = 0

    def take(frames: list[av.AudioFrame]) -> None:
        nonlocal decoded
        for frame in frames:
            array = frame.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            decoded += len(array)
            chunks.append(array)

    try:
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler re-time frames; odd pts break it
            take(resampler.resample(frame))
        take(resampler.resample(None))
    except (av.FFmpegError, ValueError) as exc:
        at = decoded / SAMPLE_RATE
        raise AudioDecodeError(
            f"The audio is corrupt or truncated: decoding failed after {at:.1f} s "
            f"({_reason(exc)}).",
            param="file",
        ) from exc
    return chunks


def _declared_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _wav_declared_duration(path: Path) -> float:
    """Seconds a RIFF/WAVE header declares. FFmpeg estimates WAV durations from the file
    size, so a cut-off WAV would otherwise look whole. 0 = not a WAV or size unknown."""
    with path.open("rb") as f:
        head = f.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk_id, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk_id == b"fmt " and pos + 16 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
        if chunk_id == b"data":
            # Streaming writers leave the size as 0 or 0xFFFFFFFF when they do not know it.
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):
                return 0.0
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return 0.0


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip() or type(exc).__name__
