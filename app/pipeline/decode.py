"""Decode any FFmpeg-readable upload, streaming, into a 16 kHz mono PCM file on disk, with
errors a client can act on.

PyAV ships FFmpeg's libraries inside its wheel, so no system ffmpeg is needed.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import av

from app.domain import Audio
from app.errors import AudioDecodeError, AudioTooLong, EmptyUpload
from app.pipeline.pcm import SAMPLE_RATE, PcmFile

log = logging.getLogger(__name__)

# A file whose decodable audio falls this far short of what its header declares is
# reported as truncated instead of silently transcribing a part of it.
_TRUNCATION_RATIO = 0.9
_TRUNCATION_SLACK_S = 1.0


def decode_to_pcm(
    src: Path,
    dst: Path,
    *,
    encoded: bool = True,
    max_duration_s: float = math.inf,
    head_s: float = math.inf,
) -> PcmFile:
    """Decode `src` into `dst` as 16 kHz mono s16le, a frame at a time (bounded memory).
    With `encoded=False` the upload already is raw 16-bit LE mono PCM at 16 kHz
    (whisper-asr-webservice's `encode=false`) and is used as it is.

    Audio longer than `max_duration_s` is refused from its header when it declares its length,
    else as soon as that much has been decoded: a small file that decodes to days of audio
    costs seconds, not hours.

    `head_s`: decode only the first that many seconds (language detection: the time and
    disk it costs do not grow with the recording)."""
    if not encoded:
        check_upload(src, encoded=False, max_duration_s=max_duration_s)
        if head_s < math.inf:
            with src.open("rb") as pcm_in, dst.open("wb") as out:
                out.write(pcm_in.read(int(head_s * SAMPLE_RATE) * 2))
        elif src != dst:
            shutil.copyfile(src, dst)
        return PcmFile(dst)
    with _opened(src, max_duration_s) as (container, stream, declared_s), dst.open("wb") as out:
        decoded = _decode_stream(container, stream, out, max_duration_s, head_s)
    decoded_s = decoded / SAMPLE_RATE
    if decoded == 0:
        raise AudioDecodeError("no audio could be decoded from the file.", param="file")
    whole = head_s == math.inf
    if whole and declared_s and decoded_s < declared_s * _TRUNCATION_RATIO - _TRUNCATION_SLACK_S:
        raise AudioDecodeError(
            f"the file looks truncated: its header declares {declared_s:.1f} s of audio but "
            f"only {decoded_s:.1f} s could be decoded.",
            param="file",
        )
    return PcmFile(dst)


def check_upload(src: Path, *, encoded: bool = True, max_duration_s: float = math.inf) -> float:
    """Cheap checks before any decoding (and before a job is accepted): the file is not
    empty, opens as audio, and does not last more than `max_duration_s`. Returns its
    seconds: what the header declares or, where it declares none (a browser's MediaRecorder
    WebM), the end of its last packet, read without decoding."""
    size = src.stat().st_size
    if not encoded:
        if size == 0:
            raise EmptyUpload("the uploaded file is empty.", param="file")
        if size % 2:
            raise AudioDecodeError(
                "encode=false expects raw 16-bit little-endian mono PCM at 16 kHz, but the "
                f"upload has an odd number of bytes ({size}).",
                param="encode",
            )
        _check_length(size / (2 * SAMPLE_RATE), max_duration_s)
        return size / (2 * SAMPLE_RATE)
    with _opened(src, max_duration_s) as (container, stream, declared_s):
        if declared_s > 0:
            return declared_s
        return _demuxed_duration(container, stream, max_duration_s)


def _demuxed_duration(
    container: av.container.InputContainer, stream: av.AudioStream, max_duration_s: float
) -> float:
    """Seconds up to the end of the stream's last packet (packets are read, not decoded:
    about a second for hours of compressed audio); 0 when packets carry no times."""
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            _check_length(end, max_duration_s)
    except (av.FFmpegError, ValueError):
        pass  # a damaged tail is the decoder's to report, with how much it could read
    return end


@contextmanager
def _opened(
    src: Path, max_duration_s: float
) -> Iterator[tuple[av.container.InputContainer, av.AudioStream, float]]:
    """The file's container, first audio stream and declared seconds, checked."""
    if src.stat().st_size == 0:
        raise EmptyUpload("the uploaded file is empty.", param="file")
    try:
        container = av.open(str(src), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(
            f"the file could not be read as audio or video ({_reason(exc)}). Supported: "
            "mp3, wav, m4a, flac, aac, ogg, wma, mp4, avi, mov, mkv, webm, amr, 3gp.",
            param="file",
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioDecodeError("the file has no audio track.", param="file")
        stream = container.streams.audio[0]
        declared_s = _wav_declared_duration(src) or _declared_duration(container, stream)
        _check_length(declared_s, max_duration_s)
        yield container, stream, declared_s


def decode_file(path: Path, *, encoded: bool = True) -> Audio:
    """Decode a (short) file into memory: for tests, benchmarks and tools, not requests."""
    with tempfile.TemporaryDirectory(prefix="asr-decode-") as folder:
        return decode_to_pcm(path, Path(folder) / "audio.pcm", encoded=encoded).audio()


def _check_length(seconds: float, max_duration_s: float) -> None:
    if seconds > max_duration_s:
        raise AudioTooLong(
            f"The audio lasts {seconds:.0f} s, longer than MAX_AUDIO_DURATION_S "
            f"({max_duration_s:g} s).",
            param="file",
        )


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    out: BinaryIO,
    max_duration_s: float,
    head_s: float = math.inf,
) -> int:
    """Write the stream's samples (the first `head_s` seconds of them) to `out`; returns
    how many were written."""
    # One-second output frames: the same samples as frame-sized ones (checked), but 50x fewer
    # Python-level frames for codecs with 20 ms packets (Opus), which halves decode time.
    resampler = av.AudioResampler(
        format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=SAMPLE_RATE
    )
    limit = max_duration_s * SAMPLE_RATE
    head = head_s * SAMPLE_RATE
    decoded = 0

    def take(frames: list[av.AudioFrame]) -> None:
        nonlocal decoded
        for frame in frames:
            pcm = frame.to_ndarray().reshape(-1)
            decoded += len(pcm)
            out.write(pcm.astype("<i2", copy=False).tobytes())
        if decoded > limit:
            raise AudioTooLong(
                f"The audio is longer than MAX_AUDIO_DURATION_S ({max_duration_s:g} s).",
                param="file",
            )

    try:
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler re-time frames; odd pts break it
            take(resampler.resample(frame))
            if decoded >= head:
                return decoded
        take(resampler.resample(None))
    except (av.FFmpegError, ValueError) as exc:
        at = decoded / SAMPLE_RATE
        raise AudioDecodeError(
            f"the audio is corrupt or truncated: decoding failed after {at:.1f} s "
            f"({_reason(exc)}).",
            param="file",
        ) from exc
    return decoded


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
