from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from app.alignment.aligner import Aligner, apply_alignment
from app.config import Settings
from app.domain import Audio, Segment, Transcript, Word
from app.models.cache import ModelCache
from app.models.hub import HubClient
from app.pipeline.align import align_in_spans
from app.pipeline.cpu_workers import CpuWorkers
from app.pipeline.pcm import PcmFile

T = TypeVar("T")


def test_wav2vec2_times_replace_dtw_and_unaligned_words_keep_a_time() -> None:
    dtw = (
        Word(1_000, 1_500, " It", 0.5),
        Word(1_500, 2_000, " costs", 0.5),
        Word(2_000, 2_600, " 20", 0.5),
        Word(2_600, 3_000, " dollars", 0.5),
    )
    transcript = Transcript(
        (
            Segment(0, 1_000, 3_000, " It costs 20 dollars", words=dtw),
            Segment(1, 3_500, 4_000, " Bye", words=(Word(3_500, 4_000, " Bye", 0.5),)),
        ),
        "en",
        1.0,
        4_000,
        word_timestamps="whisper-dtw",
    )
    aligned: list[dict[str, Any]] = [  # whisperX splits into sentences and cannot align the numeral
        {
            "words": [
                {"word": "It", "start": 1.02, "end": 1.2, "score": 0.9},
                {"word": "costs", "start": 1.3, "end": 1.7, "score": 0.8},
                {"word": "20"},
                {"word": "dollars", "start": 2.4, "end": 2.9, "score": 0.7},
            ]
        },
        {"words": [{"word": "Bye", "start": 3.55, "end": 3.9, "score": 0.95}]},
    ]
    out = apply_alignment(transcript, aligned)
    assert out.word_timestamps == "wav2vec2"
    first = out.segments[0].words
    assert [w.text.strip() for w in first] == ["It", "costs", "20", "dollars"]
    assert (first[0].start_ms, first[0].end_ms) == (1_020, 1_200)
    assert (first[2].start_ms, first[2].end_ms) == (1_700, 2_400)  # between its neighbours
    assert [w.text.strip() for w in out.segments[1].words] == ["Bye"]
    assert out.segments[0].text == " It costs 20 dollars"  # Whisper's text is kept


def one_word(language: str = "en") -> Transcript:
    return Transcript(
        (Segment(0, 0, 500, " a", words=(Word(0, 500, " a", 0.5),)),),
        language,
        1.0,
        500,
        word_timestamps="whisper-dtw",
    )


def test_nothing_aligned_keeps_the_dtw_words() -> None:
    transcript = one_word()
    assert apply_alignment(transcript, []) is transcript


def test_wanted_but_unavailable_wav2vec2_falls_back_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import whisperx

    def offline(language: str, device: str) -> None:
        raise OSError("no wav2vec2 model for 'en' in the cache and no network")

    monkeypatch.setattr(whisperx, "load_align_model", offline)
    settings = Settings(_env_file=None, cache_dir=tmp_path, alignment="wav2vec2")
    aligner = Aligner(settings, HubClient(settings), ModelCache(), "cpu")
    transcript = one_word()
    result = aligner.align_wav2vec2(transcript, Audio(np.zeros(8000, dtype=np.float32)))
    assert result.transcript is transcript and result.transcript.word_timestamps == "whisper-dtw"
    assert len(result.notes) == 1 and "no wav2vec2 model" in result.notes[0]


def test_auto_alignment_never_tries_wav2vec2_when_the_hub_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, cache_dir=tmp_path, alignment="auto", hf_hub_offline=True)
    transcript = one_word("es")
    assert Aligner(settings, HubClient(settings), ModelCache(), "cpu").method(transcript) is None


class FailingWorkers(CpuWorkers):
    def map(self, fn: Callable[..., T], calls: Sequence[tuple[object, ...]]) -> list[T]:
        raise BrokenProcessPool("a worker died")


def test_a_failed_pocketsphinx_alignment_keeps_whisper_times_and_says_so(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, cache_dir=tmp_path, alignment="pocketsphinx")
    aligner = Aligner(settings, HubClient(settings), ModelCache(), "cpu")
    transcript = one_word()
    pcm = PcmFile(tmp_path / "a.pcm")
    pcm.path.write_bytes(b"\0\0" * 16000)
    out, notes = align_in_spans(aligner, "pocketsphinx", transcript, pcm, FailingWorkers(0))
    assert out is transcript and out.word_timestamps == "whisper-dtw"
    assert len(notes) == 1 and "pocketsphinx alignment failed" in notes[0]
