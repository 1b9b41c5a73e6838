"""Whisper's timestamp tokens: cutting one decoded window into segments, and how far the
decode got.

A decode with timestamps reads `<|t0|> text <|t1|><|t1|> text <|t2|>...`: a pair of
timestamps closes one segment and opens the next. A decode that ends on such a pair before
the window's end means "the next segment starts here": the sequential decoder seeks to that
time and decodes the rest in a new pass (the window decoders do it in a further round).
A decode that ends on one timestamp, or none, covers the whole window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SECONDS_PER_TIMESTAMP = 0.02
FRAMES_PER_TIMESTAMP = 2  # mel frames (10 ms) per timestamp step


@dataclass(frozen=True)
class TimedPiece:
    """A segment of one pass, seconds from the start of what that pass decoded; `tokens`
    keep their timestamp tokens."""

    start_s: float
    end_s: float
    tokens: tuple[int, ...]


def split_at_timestamps(
    tokens: Sequence[int], timestamp_begin: int, frames: int
) -> tuple[list[TimedPiece], int]:
    """The segments of a pass over `frames` mel frames of audio, and the frames they cover
    (fewer than `frames` when the pass ended on a timestamp pair)."""
    is_time = [t >= timestamp_begin for t in tokens]
    closes = [i for i in range(1, len(tokens)) if is_time[i - 1] and is_time[i]]
    ends_on_one = len(tokens) >= 2 and is_time[-1] and not is_time[-2]
    if not closes:
        times = [t - timestamp_begin for t, timed in zip(tokens, is_time, strict=True) if timed]
        duration = frames / 100
        if times and times[-1] > 0:
            duration = times[-1] * SECONDS_PER_TIMESTAMP
        return [TimedPiece(0.0, duration, tuple(tokens))], frames
    cuts = [*closes, len(tokens)] if ends_on_one else closes
    pieces, start = [], 0
    for cut in cuts:
        part = tuple(tokens[start:cut])
        first, last = part[0] - timestamp_begin, part[-1] - timestamp_begin
        pieces.append(TimedPiece(first * SECONDS_PER_TIMESTAMP, last * SECONDS_PER_TIMESTAMP, part))
        start = cut
    if ends_on_one:
        return pieces, frames
    return pieces, (tokens[start - 1] - timestamp_begin) * FRAMES_PER_TIMESTAMP
