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


def test_renamed_replaces_speaker_labels_on_segments_words_and_embeddings() -> None:
    from app.domain import Segment, Transcript, Word

    words = (Word(0, 500, " Hi", 0.9, speaker="SPEAKER_00"),)
    transcript = Transcript(
        (
            Segment(0, 0, 500, " Hi", words=words, speaker="SPEAKER_00"),
            Segment(1, 600, 900, " Yo", speaker="SPEAKER_01"),
        ),
        "en",
        1.0,
        900,
        speaker_embeddings={"SPEAKER_00": [1.0], "SPEAKER_01": [0.0]},
    )
    renamed = transcript.renamed({"SPEAKER_00": "Alice"})
    assert [s.speaker for s in renamed.segments] == ["Alice", "SPEAKER_01"]
    assert renamed.segments[0].words[0].speaker == "Alice"
    assert renamed.speaker_embeddings == {"Alice": [1.0], "SPEAKER_01": [0.0]}
    assert transcript.segments[0].speaker == "SPEAKER_00"  # the original is untouched


def test_speaker_renames_parameter_is_checked() -> None:
    import pytest

    from app.api.jobs_routes import speaker_renames
    from app.errors import InvalidRequest

    assert speaker_renames('{"SPEAKER_00": " Alice "}') == {"SPEAKER_00": "Alice"}
    assert speaker_renames(None) == {} and speaker_renames("") == {}
    for bad in ("nope", "[1]", '{"SPEAKER_00": 3}', '{"SPEAKER_00": "  "}'):
        with pytest.raises(InvalidRequest):
            speaker_renames(bad)
