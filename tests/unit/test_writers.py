from __future__ import annotations

import csv
import io
import json

import srt
import webvtt

from app.domain import Segment, Transcript, Word
from app.writers import WRITERS, writer_for

TRANSCRIPT = Transcript(
    segments=(
        Segment(
            0,
            1_250,
            3_600_000 + 61_005,
            " Hello --> there.",
            words=(Word(1_250, 1_700, " Hello", 0.91),),
        ),
        Segment(1, 3_661_005, 3_662_000, " Tab\there.", speaker="SPEAKER_01"),
    ),
    language="en",
    language_probability=1.0,
    duration_ms=3_662_500,
)


def test_srt_round_trips_through_a_real_parser() -> None:
    cues = list(srt.parse(writer_for("srt").write(TRANSCRIPT)))
    assert [c.index for c in cues] == [1, 2]
    assert cues[0].start.total_seconds() == 1.25
    assert cues[0].end.total_seconds() == 3661.005
    assert cues[0].content == "Hello -> there."  # a literal arrow would break the cue
    assert cues[1].content == "[SPEAKER_01]: Tab\there."


def test_vtt_round_trips_through_a_real_parser() -> None:
    captions = webvtt.from_buffer(io.StringIO(writer_for("vtt").write(TRANSCRIPT)))
    assert [c.start for c in captions.captions] == ["00:00:01.250", "01:01:01.005"]
    assert captions.captions[1].text == "[SPEAKER_01]: Tab\there."


def test_tsv_is_integer_milliseconds() -> None:
    rows = list(csv.DictReader(io.StringIO(writer_for("tsv").write(TRANSCRIPT)), delimiter="\t"))
    assert rows[0] == {"start": "1250", "end": "3661005", "text": "Hello -> there."}
    assert rows[1]["text"] == "[SPEAKER_01]: Tab here."


def test_json_is_the_whisper_asr_webservice_shape() -> None:
    body = json.loads(writer_for("json").write(TRANSCRIPT))
    assert body["text"] == body["segments"]
    assert body["segments"][0]["start"] == 1.25
    assert body["segments"][0]["words"] == [
        {"word": "Hello", "start": 1.25, "end": 1.7, "score": 0.91}
    ]
    assert body["segments"][1]["speaker"] == "SPEAKER_01"
    assert body["word_segments"] == [{"word": "Hello", "start": 1.25, "end": 1.7, "score": 0.91}]


def test_text_has_one_line_per_segment_and_txt_is_an_alias() -> None:
    assert writer_for("txt").write(TRANSCRIPT) == "Hello -> there.\n[SPEAKER_01]: Tab\there.\n"
    assert WRITERS["txt"] is WRITERS["text"]
