"""PocketSphinx forced alignment (app/alignment/phonetic.py) with its real acoustic model on
a real recording with known turn boundaries, and the choice of aligner per transcript."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_tools import CONVERSATION, conversation_turns

from app.alignment.aligner import Aligner
from app.alignment.phonetic import align_words
from app.config import Settings
from app.domain import Segment, Transcript, Word
from app.models.cache import ModelCache
from app.models.hub import HubClient
from app.pipeline.decode import decode_to_pcm


def rough_words(shift_s: float) -> list[Word]:
    """Each turn's words spread evenly over the turn and all `shift_s` late: times as rough
    as Whisper's cross-attention gives at worst, some words in the pauses between turns."""
    words: list[Word] = []
    for turn in conversation_turns():
        texts = turn.text.split()
        step = (turn.end - turn.start) / len(texts)
        start = turn.start + shift_s
        for i, text in enumerate(texts):
            a, b = start + i * step, start + (i + 1) * step
            words.append(Word(round(a * 1000), round(b * 1000), " " + text, 0.9))
    return words


def in_a_turn(word: Word) -> bool:
    return any(
        t.start * 1000 <= word.start_ms and word.end_ms <= t.end * 1000
        for t in conversation_turns()
    )


def test_words_move_onto_the_speech_and_leave_the_pauses_empty(tmp_path: Path) -> None:
    samples = decode_to_pcm(CONVERSATION, tmp_path / "c.pcm").read()
    words = rough_words(shift_s=0.4)
    assert not all(in_a_turn(w) for w in words)  # some rough words sit in the pauses

    aligned = align_words(words, samples)

    assert (aligned.stretches, aligned.kept_whisper) == (4, 0)  # one stretch per turn
    assert [w.text for w in aligned.words] == [w.text for w in words]
    assert [w.probability for w in aligned.words] == [w.probability for w in words]
    assert all(in_a_turn(w) for w in aligned.words)
    ends = [(w.start_ms, w.end_ms) for w in aligned.words]
    assert all(a < b for a, b in ends) and all(
        ends[i][1] <= ends[i + 1][0] for i in range(len(ends) - 1)
    )


def test_words_the_audio_cannot_hold_keep_whispers_times() -> None:
    words = [Word(i * 20, i * 20 + 20, " conversation", 0.9) for i in range(12)]
    aligned = align_words(words, np.zeros(4_000, dtype=np.float32) + 0.01)
    assert (aligned.stretches, aligned.kept_whisper) == (1, 1)
    assert aligned.words == words


def test_words_not_in_the_dictionary_are_aligned_too(tmp_path: Path) -> None:
    samples = decode_to_pcm(CONVERSATION, tmp_path / "c.pcm").read()
    words = rough_words(shift_s=0.4)
    # Spellings the dictionary has never seen, as Whisper writes names and numbers
    unknown = {" budget": " Budgett", " Friday.": " Fryday.", " to": " 2"}
    words = [replace_text(w, unknown.get(w.text, w.text)) for w in words]
    assert {" Budgett", " Fryday.", " 2"} <= {w.text for w in words}
    aligned = align_words(words, samples)
    assert aligned.kept_whisper == 0
    assert all(in_a_turn(w) for w in aligned.words)


def replace_text(word: Word, text: str) -> Word:
    return Word(word.start_ms, word.end_ms, text, word.probability)


def transcript(language: str = "en", task: str = "transcribe") -> Transcript:
    words = (Word(0, 400, " Hello", 0.9),)
    return Transcript(
        (Segment(0, 0, 400, " Hello", words=words),),
        language,
        1.0,
        400,
        task,  # type: ignore[arg-type]
        word_timestamps="whisper-dtw",
    )


@pytest.mark.parametrize(
    ("alignment", "script", "expected"),
    [
        ("auto", transcript(), "pocketsphinx"),  # the hub is unreachable in these tests
        ("auto", transcript("fr"), None),
        ("auto", transcript(task="translate"), None),  # English words never said aloud
        ("pocketsphinx", transcript("de"), None),
        ("dtw", transcript(), None),
    ],
)
def test_the_aligner_for_each_transcript(
    tmp_path: Path, alignment: str, script: Transcript, expected: str | None
) -> None:
    settings = Settings(
        _env_file=None, cache_dir=tmp_path, alignment=alignment, hf_hub_offline=True
    )
    aligner = Aligner(settings, HubClient(settings), ModelCache(), "cpu")
    assert aligner.method(script) == expected


def test_speech_without_pauses_is_aligned_in_stretches_of_at_most_30_s(tmp_path: Path) -> None:
    samples = decode_to_pcm(CONVERSATION, tmp_path / "c.pcm").read()
    # The conversation four times over, its pauses taken out of the words' rough times (as
    # Whisper gives them for fast, continuous speech): 72 s in one run of words.
    words: list[Word] = []
    for k in range(4):
        offset = k * len(samples) * 1000 // 16000
        for w in rough_words(shift_s=0.0):
            words.append(Word(w.start_ms + offset, w.end_ms + offset, w.text, w.probability))
    joined = [
        Word(words[i - 1].end_ms if i else w.start_ms, w.end_ms, w.text, w.probability)
        for i, w in enumerate(words)
    ]
    aligned = align_words(joined, np.tile(samples, 4))
    assert aligned.stretches >= 3 and aligned.kept_whisper == 0
    assert all(w.start_ms < w.end_ms for w in aligned.words)
