"""Decoded audio on disk: 16 kHz mono 16-bit PCM, read back a block at a time.

A 3-hour meeting is 345 MB of int16 (690 MB as float32): kept on disk, only the block a
stage is working on is ever in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.domain import Audio

SAMPLE_RATE = 16000
BYTES_PER_SAMPLE = 2


@dataclass(frozen=True)
class PcmFile:
    """Raw s16le mono samples at 16 kHz in `path`."""

    path: Path

    @property
    def samples(self) -> int:
        return self.path.stat().st_size // BYTES_PER_SAMPLE

    @property
    def duration_ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE

    def read(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Samples [start, end) as float32 in [-1, 1]; `end` is clipped to the file."""
        return self.read_int16(start, end).astype(np.float32) / 32768.0

    def read_int16(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Samples [start, end) as stored (int16); `end` is clipped to the file."""
        total = self.samples
        end = total if end is None else min(end, total)
        start = max(0, min(start, end))
        with self.path.open("rb") as f:
            f.seek(start * BYTES_PER_SAMPLE)
            return np.fromfile(f, dtype="<i2", count=end - start)

    def audio(self, start: int = 0, end: int | None = None) -> Audio:
        return Audio(self.read(start, end), SAMPLE_RATE)

    def blocks(self, block_samples: int) -> list[tuple[int, int]]:
        """[start, end) sample ranges covering the file, each at most `block_samples`."""
        total = self.samples
        return [(s, min(s + block_samples, total)) for s in range(0, total, block_samples)]
