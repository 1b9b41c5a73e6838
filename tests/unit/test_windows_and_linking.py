"""Windows, blocks, time mapping, diarization spans and cross-span speaker linking."""

from __future__ import annotations

from app.diarization.diarizer import SpeakerTurn
from app.domain import SpeakerLimits
from app.pipeline.diarize import diarization_spans, link_speakers, to_recording
from app.pipeline.vad import SpeechRegion
from app.pipeline.windows import WINDOW_SAMPLES, Timeline, group_blocks, pack_windows

SR = 16000


def test_windows_hold_at_most_30_s_of_speech_and_long_regions_are_cut() -> None:
    regions = [
        SpeechRegion(0, 10 * SR),
        SpeechRegion(12 * SR, 30 * SR),
        SpeechRegion(31 * SR, 101 * SR),
    ]
    windows = pack_windows(regions)
    assert all(w.samples <= WINDOW_SAMPLES for w in windows)
    assert [w.samples // SR for w in windows] == [28, 30, 30, 10]
    assert sum(w.samples for w in windows) == sum(r.samples for r in regions)  # nothing lost
    blocks = group_blocks(windows, per_block=3)
    assert [len(b.windows) for b in blocks] == [3, 1]
    assert blocks[0].window_bounds_s() == [(0.0, 28.0), (28.0, 58.0), (58.0, 88.0)]


def test_timeline_maps_joined_speech_back_to_the_recording() -> None:
    timeline = Timeline((SpeechRegion(2 * SR, 5 * SR), SpeechRegion(10 * SR, 12 * SR)))
    # 1.0 s into the joined speech is 3.0 s of the recording; 3.5 s is 10.5 s.
    assert timeline.to_recording_ms(1.0, timeline.region_of(1.0)) == 3_000
    assert timeline.to_recording_ms(3.5, timeline.region_of(3.5)) == 10_500
    # The end of the first region maps to its own end, not the next region's start.
    assert timeline.to_recording_ms(3.0, timeline.region_of(3.0, is_end=True)) == 5_000


def test_spans_hold_at_most_a_chunk_of_speech_each_and_all_of_it() -> None:
    # Pauses under 10 s are heard; longer silence is left out.
    one = [SpeechRegion(0, SR), SpeechRegion(5 * SR, 8 * SR), SpeechRegion(90 * SR, 100 * SR)]
    assert [s.regions for s in diarization_spans(one, chunk=600 * SR)] == [
        (SpeechRegion(0, 8 * SR), SpeechRegion(90 * SR, 100 * SR))
    ]
    # 25 minutes of which 50 s each: 20.8 minutes of speech, 600 s of it per span at most.
    regions = [SpeechRegion(m * 60 * SR, (m * 60 + 50) * SR) for m in range(25)]
    spans = diarization_spans(regions, chunk=600 * SR)
    assert len(spans) == 3 and all(s.samples <= 600 * SR for s in spans)
    assert [r for s in spans for r in s.regions] == regions
    # Speech with short pauses only: the pauses are heard, and a full span is closed at a
    # pause, never inside a region.
    talk = [SpeechRegion(m * 101 * SR, (m * 101 + 100) * SR) for m in range(5)]
    spans = diarization_spans(talk, chunk=250 * SR)
    assert [s.regions for s in spans] == [
        (SpeechRegion(0, 201 * SR),),
        (SpeechRegion(202 * SR, 403 * SR),),
        (SpeechRegion(404 * SR, 504 * SR),),
    ]
    # One region longer than a chunk is cut.
    assert [s.samples for s in diarization_spans([SpeechRegion(0, 700 * SR)], 600 * SR)] == [
        600 * SR,
        100 * SR,
    ]


def test_turns_in_joined_speech_map_back_cut_at_the_joins() -> None:
    regions = [SpeechRegion(2 * SR, 5 * SR), SpeechRegion(10 * SR, 12 * SR)]
    turns = [SpeakerTurn(0, 2_000, "A"), SpeakerTurn(2_000, 4_500, "B")]
    # B runs from 2.0 s of the first region (4.0 s) into the second (to 11.5 s): two turns,
    # the silence between the regions left to nobody.
    assert to_recording(turns, regions) == [
        SpeakerTurn(2_000, 4_000, "A"),
        SpeakerTurn(4_000, 5_000, "B"),
        SpeakerTurn(10_000, 11_500, "B"),
    ]


def test_linking_merges_the_same_voice_across_spans_but_never_within_one() -> None:
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    local = [
        (0, "0:x", a),
        (0, "0:y", b),
        (1, "1:x", [0.99, 0.05, 0.0]),
        (1, "1:y", [0.02, 1.0, 0.0]),
        (2, "2:z", a),
    ]
    names = link_speakers(local, threshold=0.3, limits=SpeakerLimits())
    assert names["0:x"] == names["1:x"] == names["2:z"] != names["0:y"] == names["1:y"]
    # Two speakers of one span stay apart even when their voices are identical.
    same = link_speakers([(0, "0:x", a), (0, "0:y", a)], 0.3, SpeakerLimits())
    assert same["0:x"] != same["0:y"]
    # An exact count overrides the threshold in both directions.
    two = link_speakers(local, threshold=0.0, limits=SpeakerLimits(num_speakers=2))
    assert len(set(two.values())) == 2
