"""Cutting a decode at its timestamp tokens: the same segments and the same seek as
faster-whisper's sequential decoder, on hand-written token sequences."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faster_whisper.transcribe import WhisperModel

from app.engines.timestamp_tokens import split_at_timestamps

BEGIN = 50364  # <|0.00|> in the multilingual vocabulary
T = [BEGIN + i for i in range(1501)]  # T[n] = <|n * 0.02|>
A, B, C = 440, 1002, 2003  # text tokens


def faster_whisper_split(tokens: list[int], frames: int) -> tuple[list[tuple], int]:
    model = SimpleNamespace(input_stride=2, time_precision=0.02, frames_per_second=100)
    tokenizer = SimpleNamespace(timestamp_begin=BEGIN)
    segments, seek, _ = WhisperModel._split_segments_by_timestamps(
        model,
        tokenizer,
        tokens,
        time_offset=0.0,
        segment_size=frames,
        segment_duration=frames / 100,
        seek=0,
    )
    return [(s["start"], s["end"], tuple(s["tokens"])) for s in segments], seek


@pytest.mark.parametrize(
    "tokens",
    [
        [T[0], A, B, T[150], T[150], C, T[400], T[400]],  # ends on a pair: seek to 8 s
        [T[0], A, B, T[150], T[150], C, T[400]],  # ends on one: the whole window
        [T[10], A, T[200]],  # one segment, single ending
        [T[10], A, B, C],  # no closing timestamp (ran out of length)
        [A, B, C],  # no timestamps at all
        [T[0], A, T[100], T[100], B, T[300], T[300], C],  # text after the last pair
    ],
)
def test_same_cut_as_faster_whisper(tokens: list[int]) -> None:
    frames = 2500
    pieces, advance = split_at_timestamps(tokens, BEGIN, frames)
    theirs, seek = faster_whisper_split(tokens, frames)
    assert advance == seek
    assert [(round(p.start_s, 2), round(p.end_s, 2), p.tokens) for p in pieces] == [
        (round(s, 2), round(e, 2), t) for s, e, t in theirs
    ]
