"""Decoding in worker processes: the same PCM as decoding in the thread, the same errors
(message, parameter, code) crossing the process boundary, real files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import AudioDecodeError, AudioTooLong
from app.pipeline.decode import decode_to_pcm
from app.pipeline.decode_pool import AudioDecoder

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def decoder() -> Iterator[AudioDecoder]:
    pool = AudioDecoder(2)
    pool.warm_up()
    yield pool
    pool.close()


def test_worker_process_writes_the_same_pcm(decoder: AudioDecoder, tmp_path: Path) -> None:
    src = FIXTURES / "conversation.flac"
    here = decode_to_pcm(src, tmp_path / "here.pcm")
    there = decoder.decode(src, tmp_path / "there.pcm")
    assert there.samples == here.samples > 16000
    assert there.path.read_bytes() == here.path.read_bytes()


def test_errors_keep_their_message_and_parameter(decoder: AudioDecoder, tmp_path: Path) -> None:
    src = FIXTURES / "conversation.flac"
    with pytest.raises(AudioTooLong) as too_long:
        decoder.decode(src, tmp_path / "a.pcm", max_duration_s=1.0)
    assert too_long.value.param == "file"
    assert too_long.value.code == "audio_too_long"
    assert "MAX_AUDIO_DURATION_S" in too_long.value.message

    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioDecodeError) as bad:
        decoder.decode(garbage, tmp_path / "b.pcm")
    assert bad.value.param == "file"
    assert bad.value.code == "invalid_audio"


def test_no_processes_decodes_in_the_calling_thread(tmp_path: Path) -> None:
    inline = AudioDecoder(0)
    pcm = inline.decode(FIXTURES / "rapid.flac", tmp_path / "x.pcm")
    assert pcm.samples > 0
    inline.close()
