"""Before work: the duration check reads a file that declares no duration (a browser's
MediaRecorder WebM, written as a stream) by its packets: it was 0 s, so such an upload
passed MAX_AUDIO_DURATION_S and the daily allowance uncounted; and language detection
decodes only the head of a long upload (it decoded all of it)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from audio_tools import JFK, mux_audio, silent_opus

from app.errors import AudioTooLong
from app.pipeline.decode import check_upload, decode_to_pcm


class _Unseekable(io.RawIOBase):
    """A pipe as a muxer sees it: it cannot go back to write the duration."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self._out.write(data)


def streamed_webm(src: Path, dst: Path) -> Path:
    with dst.open("wb") as raw, av.open(_Unseekable(raw), "w", format="webm") as out:
        mux_audio(src, out, "libopus", 48000)
    return dst


def test_a_webm_without_a_declared_duration_is_measured_by_its_packets(tmp_path: Path) -> None:
    webm = streamed_webm(JFK, tmp_path / "recorded.webm")
    with av.open(str(webm)) as container:
        assert container.duration is None and container.streams.audio[0].duration is None
    assert check_upload(webm) == pytest.approx(check_upload(JFK), abs=0.05)
    with pytest.raises(AudioTooLong):
        check_upload(webm, max_duration_s=5)


def test_only_the_head_is_decoded_for_language_detection(tmp_path: Path) -> None:
    """/detect-language decodes the first 10 minutes, not all of a long upload: 20 minutes
    of audio decode to 600 s (one-second frames: at most a second more), encoded or raw."""
    long = silent_opus(tmp_path / "twenty-minutes.ogg", 1200)
    head = decode_to_pcm(long, tmp_path / "head.pcm", head_s=600)
    assert 600_000 <= head.duration_ms <= 601_000
    whole = decode_to_pcm(long, tmp_path / "whole.pcm")
    assert whole.duration_ms >= 1_199_000
    raw_head = decode_to_pcm(
        tmp_path / "whole.pcm", tmp_path / "raw.pcm", encoded=False, head_s=600
    )
    assert raw_head.duration_ms == 600_000
