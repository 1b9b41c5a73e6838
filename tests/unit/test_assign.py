from __future__ import annotations

from app.diarization.assign import drop_words, label_speakers
from app.diarization.diarizer import Diarization, SpeakerTurn
from app.domain import Segment, Transcript, Word


def words(*spec: tuple[str, int, int]) -> tuple[Word, ...]:
    return tuple(Word(start, end, f" {text}", 0.9) for text, start, end in spec)


def transcript(*segments: Segment) -> Transcript:
    return Transcript(segments, "en", 1.0, 10_000, word_timestamps="whisper-dtw")


TURNS = (
    SpeakerTurn(0, 2_000, "spk_b"),
    SpeakerTurn(2_100, 4_000, "spk_a"),
    SpeakerTurn(4_200, 6_000, "spk_b"),
)


def test_a_segment_spanning_two_speakers_is_split_at_the_change() -> None:
    seg = Segment(
        0,
        100,
        3_900,
        " Are you coming? Yes I am.",
        tokens=(1, 2, 3),
        words=words(
            ("Are", 100, 400),
            ("you", 400, 700),
            ("coming?", 700, 1_800),
            ("Yes", 2_200, 2_500),
            ("I", 2_500, 2_700),
            ("am.", 2_700, 3_900),
        ),
    )
    out = label_speakers(transcript(seg), Diarization(TURNS, pipeline="test"))
    assert [(s.id, s.start_ms, s.end_ms, s.speaker, s.text) for s in out.segments] == [
        (0, 100, 1_800, "SPEAKER_00", " Are you coming?"),
        (1, 2_200, 3_900, "SPEAKER_01", " Yes I am."),
    ]
    assert all(w.speaker == "SPEAKER_00" for w in out.segments[0].words)
    assert out.segments[1].tokens == ()  # a part of a segment has no known token ids
    assert out.diarization == "test" and out.speakers == ["SPEAKER_00", "SPEAKER_01"]


def test_labels_follow_first_appearance_and_embeddings_follow_labels() -> None:
    seg = Segment(
        0,
        2_200,
        5_000,
        " later first",
        words=words(("later", 2_200, 3_000), ("first", 4_300, 5_000)),
    )
    diarization = Diarization(TURNS, embeddings={"spk_a": [1.0], "spk_b": [2.0]})
    out = label_speakers(transcript(seg), diarization)
    assert [s.speaker for s in out.segments] == ["SPEAKER_00", "SPEAKER_01"]  # spk_a spoke first
    assert out.speaker_embeddings == {"SPEAKER_00": [1.0], "SPEAKER_01": [2.0]}


def test_words_outside_every_turn_get_the_nearest_speaker() -> None:
    seg = Segment(0, 6_500, 7_000, " tail", words=words(("tail", 6_500, 7_000)))
    out = label_speakers(transcript(seg), Diarization(TURNS))
    assert out.segments[0].speaker == "SPEAKER_00"  # spk_b, whose turn ended at 6.0 s


def test_segments_without_words_are_labelled_by_overlap() -> None:
    out = label_speakers(transcript(Segment(0, 2_300, 3_800, " hi")), Diarization(TURNS))
    assert out.segments[0].speaker == "SPEAKER_00" and out.speakers == ["SPEAKER_00"]


def test_no_turns_leaves_text_unlabelled() -> None:
    out = label_speakers(transcript(Segment(0, 0, 500, " hi")), Diarization(()))
    assert out.segments[0].speaker is None and out.speakers == []


def test_drop_words_keeps_speakers() -> None:
    seg = Segment(0, 100, 900, " x", words=words(("x", 100, 900)), speaker="SPEAKER_00")
    out = drop_words(transcript(seg))
    assert out.segments[0].words == () and out.segments[0].speaker == "SPEAKER_00"
    assert out.word_timestamps is None
