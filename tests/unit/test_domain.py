"""Moving a window's segments onto the recording's time line (and back, for alignment)."""

from __future__ import annotations

from app.domain import Segment, Word


def test_a_shifted_segment_moves_with_its_words_and_keeps_the_rest() -> None:
    words = (Word(100, 400, " hello", 0.9, "A"), Word(450, 900, " there", 0.8))
    segment = Segment(3, 100, 900, " hello there", words, seek=12, speaker="A")
    moved = segment.shifted(30_000)
    assert (moved.start_ms, moved.end_ms) == (30_100, 30_900)
    assert [(w.start_ms, w.end_ms) for w in moved.words] == [(30_100, 30_400), (30_450, 30_900)]
    assert [(w.text, w.probability, w.speaker) for w in moved.words] == [
        (" hello", 0.9, "A"),
        (" there", 0.8, None),
    ]
    assert (moved.id, moved.text, moved.seek, moved.speaker) == (3, " hello there", 12, "A")
    assert moved.shifted(-30_000) == segment
