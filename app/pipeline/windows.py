"""Speech regions -> windows of at most 30 s of speech -> blocks of windows.

A window is the unit every Whisper engine consumes (one 30 s encoder input). A block is a run
of consecutive windows decoded together in one engine call (about 2 minutes of speech): the
sequential decoder carries its context through a block exactly as faster-whisper does
through a whole file, and only one block of audio is ever in memory.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.vad import SpeechRegion

WINDOW_SAMPLES = 30 * SAMPLE_RATE
WINDOWS_PER_BLOCK = 4


@dataclass(frozen=True)
class Window:
    """Consecutive speech regions whose speech adds up to at most 30 s."""

    regions: tuple[SpeechRegion, ...]

    @property
    def samples(self) -> int:
        return sum(r.samples for r in self.regions)

    def speech(self, pcm: PcmFile) -> np.ndarray:
        """The window's speech, its regions joined end to end (silence between them left
        out, as faster-whisper's VAD filter does)."""
        return np.concatenate([pcm.read(r.start, r.end) for r in self.regions])

    def timeline(self) -> Timeline:
        return Timeline(self.regions)


@dataclass(frozen=True)
class Block:
    windows: tuple[Window, ...]

    @property
    def regions(self) -> tuple[SpeechRegion, ...]:
        return tuple(r for w in self.windows for r in w.regions)

    @property
    def samples(self) -> int:
        return sum(w.samples for w in self.windows)

    def speech(self, pcm: PcmFile) -> np.ndarray:
        """The block's speech: its windows' speech end to end."""
        return np.concatenate([w.speech(pcm) for w in self.windows])

    def window_bounds_s(self) -> list[tuple[float, float]]:
        """Each window's [start, end) in seconds of the joined speech."""
        bounds, at = [], 0
        for window in self.windows:
            bounds.append((at / SAMPLE_RATE, (at + window.samples) / SAMPLE_RATE))
            at += window.samples
        return bounds

    def timeline(self) -> Timeline:
        return Timeline(self.regions)


def split_long(regions: list[SpeechRegion], limit: int = WINDOW_SAMPLES) -> list[SpeechRegion]:
    """Regions longer than `limit` samples cut into pieces of at most `limit`."""
    out: list[SpeechRegion] = []
    for region in regions:
        for start in range(region.start, region.end, limit):
            out.append(SpeechRegion(start, min(start + limit, region.end)))
    return out


def pack_windows(regions: list[SpeechRegion], limit: int = WINDOW_SAMPLES) -> list[Window]:
    """Greedy packing in order: a region joins the open window while the speech fits."""
    windows: list[list[SpeechRegion]] = []
    filled = limit + 1
    for region in split_long(regions, limit):
        if filled + region.samples > limit:
            windows.append([])
            filled = 0
        windows[-1].append(region)
        filled += region.samples
    return [Window(tuple(w)) for w in windows]


def group_blocks(windows: list[Window], per_block: int = WINDOWS_PER_BLOCK) -> list[Block]:
    return [Block(tuple(windows[i : i + per_block])) for i in range(0, len(windows), per_block)]


class Timeline:
    """Maps a time in the joined speech of some regions back to the recording's time (what
    faster-whisper's SpeechTimestampsMap does for its own VAD filter)."""

    def __init__(self, regions: tuple[SpeechRegion, ...]) -> None:
        self._ends: list[int] = []  # each region's end, in joined-speech samples
        self._offsets: list[int] = []  # recording sample = joined sample + offset
        joined = 0
        for region in regions:
            self._offsets.append(region.start - joined)
            joined += region.samples
            self._ends.append(joined)

    def region_of(self, seconds: float, *, is_end: bool = False) -> int:
        sample = int(seconds * SAMPLE_RATE)
        if is_end and sample in self._ends:
            return self._ends.index(sample)
        return min(bisect_right(self._ends, sample), len(self._ends) - 1)

    def to_recording_ms(self, seconds: float, region: int) -> int:
        # Rounded to 10 ms first, as faster-whisper's own map does: the same times as before.
        return round(round(self._offsets[region] / SAMPLE_RATE + seconds, 2) * 1000)

    def recording_pieces(self, start: int, end: int) -> list[tuple[int, int]]:
        """Joined-speech samples [start, end) -> [start, end) in the recording, one piece per
        region they reach into (the silence left out between regions is in none)."""
        pieces, first = [], 0
        for last, offset in zip(self._ends, self._offsets, strict=True):
            if (a := max(start, first)) < (b := min(end, last)):
                pieces.append((a + offset, b + offset))
            first = last
        return pieces
