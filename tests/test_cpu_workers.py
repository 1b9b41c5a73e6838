"""CPU work in worker processes: decoding gives the same PCM as decoding in the thread, the
same errors (message, parameter, code) cross the process boundary; PocketSphinx alignment of
a span of the PCM file gives the same words as in the thread. Real files, real models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from app.alignment.phonetic import align_words
from app.domain import Word
from app.errors import AudioDecodeError, AudioTooLong
from app.pipeline.align import align_pcm_span
from app.pipeline.cpu_workers import CpuWorkers
from app.pipeline.decode import decode_to_pcm

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def decoder() -> Iterator[CpuWorkers]:
    pool = CpuWorkers(2)
    pool.warm_up()
    yield pool
    pool.close()


def test_worker_process_writes_the_same_pcm(decoder: CpuWorkers, tmp_path: Path) -> None:
    src = FIXTURES / "conversation.flac"
    here = decode_to_pcm(src, tmp_path / "here.pcm")
    there = decoder.decode(src, tmp_path / "there.pcm")
    assert there.samples == here.samples > 16000
    assert there.path.read_bytes() == here.path.read_bytes()


def test_errors_keep_their_message_and_parameter(decoder: CpuWorkers, tmp_path: Path) -> None:
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
    inline = CpuWorkers(0)
    pcm = inline.decode(FIXTURES / "rapid.flac", tmp_path / "x.pcm")
    assert pcm.samples > 0
    inline.close()


def test_alignment_of_a_pcm_span_in_a_worker_is_the_same_as_here(
    decoder: CpuWorkers, tmp_path: Path
) -> None:
    pcm = decode_to_pcm(FIXTURES / "conversation.flac", tmp_path / "c.pcm")
    first, last = 16_000 * 5, 16_000 * 10  # 5 s to 10 s: the second turn, "Thanks. ..."
    said = "Thanks. The budget report is ready and the numbers look good."
    words = [
        Word(900 + 360 * i, 1_250 + 360 * i, f" {text}", 0.9)
        for i, text in enumerate(said.split(" "))
    ]
    there = decoder.run(align_pcm_span, words, pcm, first, last)
    here = align_words(words, pcm.read(first, last))
    assert there == here and there.kept_whisper == 0
    assert [w.text for w in there.words] == [w.text for w in words]


def test_a_long_recording_is_aligned_in_spans_spread_over_the_workers(
    decoder: CpuWorkers, tmp_path: Path
) -> None:
    """Over four minutes of the conversation (its 18 s fourteen times over): two-minute spans go
    to both workers at once and come back in order, as aligned here one after another."""
    from audio_tools import conversation_turns

    from app.alignment.aligner import Aligner
    from app.config import Settings
    from app.domain import Segment, Transcript
    from app.models.cache import ModelCache
    from app.models.hub import HubClient
    from app.pipeline.align import PHONETIC_SPAN_MS, align_in_spans
    from app.pipeline.pcm import PcmFile

    once = decode_to_pcm(FIXTURES / "conversation.flac", tmp_path / "c.pcm")
    path = tmp_path / "long.pcm"
    path.write_bytes(once.path.read_bytes() * 14)
    period_ms = once.duration_ms
    segments: list[Segment] = []
    for k in range(14):
        for turn in conversation_turns():
            texts = turn.text.split(" ")
            start = k * period_ms + round(turn.start * 1000) + 300  # rough: 0.3 s late
            step = round((turn.end - turn.start) * 1000) // len(texts)
            words = tuple(
                Word(start + i * step, start + (i + 1) * step, f" {t}", 0.9)
                for i, t in enumerate(texts)
            )
            segments.append(
                Segment(len(segments), words[0].start_ms, words[-1].end_ms, turn.text, words=words)
            )
    transcript = Transcript(
        tuple(segments), "en", 1.0, 14 * period_ms, word_timestamps="whisper-dtw"
    )
    settings = Settings(_env_file=None, cache_dir=tmp_path, hf_hub_offline=True)
    aligner = Aligner(settings, HubClient(settings), ModelCache(), "cpu")
    assert 14 * period_ms > 2 * PHONETIC_SPAN_MS

    spread, notes = align_in_spans(aligner, "pocketsphinx", transcript, PcmFile(path), decoder)
    here, _ = align_in_spans(aligner, "pocketsphinx", transcript, PcmFile(path), CpuWorkers(0))

    assert spread == here and notes == ()
    assert spread.word_timestamps == "pocketsphinx"
    moved = [
        (a.start_ms, b.start_ms)
        for s, t in zip(spread.segments, transcript.segments, strict=True)
        for a, b in zip(s.words, t.words, strict=True)
    ]
    assert sum(a != b for a, b in moved) > len(moved) // 2  # the times did change


def _die() -> None:
    os._exit(3)  # what a crash in native code looks like to the pool


def test_a_worker_that_dies_fails_its_call_and_the_next_calls_get_new_workers(
    tmp_path: Path,
) -> None:
    workers = CpuWorkers(1)
    try:
        with pytest.raises(BrokenProcessPool):
            workers.run(_die)
        pcm = workers.decode(FIXTURES / "rapid.flac", tmp_path / "after.pcm")
        assert pcm.samples > 16000
        assert workers.map(_square, [(2,), (3,)]) == [4, 9]
    finally:
        workers.close()


def _square(x: int) -> int:
    return x * x
