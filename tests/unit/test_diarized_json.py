from __future__ import annotations

from app.api.openai_schemas import diarized, speaker_names
from app.domain import Segment, Transcript


def test_known_names_then_letters_in_order_of_first_appearance() -> None:
    labels = [f"SPEAKER_{i:02d}" for i in range(3)]
    assert speaker_names(labels, ["Alice"]) == {
        "SPEAKER_00": "Alice",
        "SPEAKER_01": "A",
        "SPEAKER_02": "B",
    }
    assert speaker_names([f"S{i}" for i in range(28)], [])["S27"] == "AB"


def test_diarized_json_shape() -> None:
    transcript = Transcript(
        (
            Segment(0, 0, 1_500, " Hi there.", speaker="SPEAKER_00"),
            Segment(1, 1_600, 2_000, " Hello.", speaker="SPEAKER_01"),
        ),
        "en",
        1.0,
        2_000,
        diarization="offline",
    )
    body = diarized(transcript, ["Dana"]).model_dump(exclude_none=True)
    assert body["task"] == "transcribe" and body["duration"] == 2.0
    assert body["segments"][0] == {
        "type": "transcript.text.segment",
        "id": "seg_0",
        "start": 0.0,
        "end": 1.5,
        "speaker": "Dana",
        "text": "Hi there.",
    }
    assert body["segments"][1]["speaker"] == "A"
    assert "notes" not in body


def test_matched_names_then_letters_for_the_others() -> None:
    labels = ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]
    assert speaker_names(labels, ["Zed", "Yan"], {"SPEAKER_01": "Yan"}) == {
        "SPEAKER_00": "A",
        "SPEAKER_01": "Yan",
        "SPEAKER_02": "B",
    }
    assert speaker_names(labels, ["Zed"], {}) == {
        "SPEAKER_00": "A",
        "SPEAKER_01": "B",
        "SPEAKER_02": "C",
    }


def test_a_speaker_who_matched_no_sample_never_gets_a_known_name() -> None:
    """Speakr sends the letters of an earlier chunk as the known names of the next: an
    unmatched voice must not come back as "A" when "A" is a known speaker."""
    labels = ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]
    assert speaker_names(labels, ["A", "B"], {"SPEAKER_01": "B"}) == {
        "SPEAKER_00": "C",
        "SPEAKER_01": "B",
        "SPEAKER_02": "D",
    }
    assert speaker_names(labels, ["A", "C"], {}) == {
        "SPEAKER_00": "B",
        "SPEAKER_01": "D",
        "SPEAKER_02": "E",
    }
    # Names alone (no samples) go to speakers in order; letters after them skip the names.
    assert speaker_names(labels, ["B"]) == {
        "SPEAKER_00": "B",
        "SPEAKER_01": "A",
        "SPEAKER_02": "C",
    }
