"""Assertions shared by the end-to-end tests of both engines."""

from __future__ import annotations

from typing import Any

from audio_tools import normalize


def assert_ordered_timings(body: dict[str, Any]) -> None:
    """/asr JSON: segments in order inside the audio; words in order inside their segment."""
    duration = body["duration"]
    previous_end = 0.0
    for segment in body["segments"]:
        assert previous_end - 0.01 <= segment["start"] < segment["end"] <= duration + 0.01
        previous_end = segment["end"]
        last = segment["start"] - 0.01
        for word in segment["words"]:
            assert last <= word["start"] <= word["end"] <= duration + 0.01
            assert 0.0 <= word["score"] <= 1.0
            last = word["start"]


def assert_verbose_conversation(result: Any) -> None:
    """The openai SDK's verbose_json of tests/fixtures/conversation.flac, with words."""
    assert result.language == "english" and 17.0 < result.duration < 20.0
    assert result.segments and result.words
    segment = result.segments[0]
    assert segment.id == 0 and segment.tokens and segment.avg_logprob < 0
    assert 0 <= segment.no_speech_prob <= 1 and segment.compression_ratio > 0
    assert segment.temperature == 0.0
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and all(w.end <= result.duration + 0.01 for w in result.words)
    assert normalize(" ".join(w.word for w in result.words))[:3] == ["good", "morning", "everyone"]
