"""Where the speech is: VAD over a PCM file, as a list of regions (the sequential decoder
reads blocks of them) or as windows handed out while VAD still runs (the window scheduler
starts decoding a recording's first windows before its VAD has reached the end).

With the scheduler, speech longer than a window is cut at its last pause before 30 s (as
batched decoders cut it), not at 30 s sharp: windows decoded on their own must not start
or end inside a word. The sequential decoder reads on across windows and keeps
faster-whisper's own regions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.vad import (
    RegionFinder,
    SpeechRegion,
    VadOptions,
    probability_blocks,
    speech_probabilities,
    speech_regions,
)
from app.pipeline.windows import WINDOW_SAMPLES, Window, split_long, stream_windows

WINDOWED_VAD = VadOptions(max_speech_duration_s=WINDOW_SAMPLES / SAMPLE_RATE)


class SpeechFinder:
    def __init__(self, vad_threads: int) -> None:
        """`vad_threads`: recordings whose VAD network runs at once (a core each)."""
        self._slots = threading.BoundedSemaphore(max(1, vad_threads))

    def regions(
        self, pcm: PcmFile, vad_filter: bool, progress: Callable[[float], None]
    ) -> list[SpeechRegion]:
        """All the speech regions (faster-whisper's), or the whole file without VAD."""
        if not vad_filter:
            return _whole(pcm)
        with self._slots:
            probabilities = speech_probabilities(pcm, progress)
        return speech_regions(probabilities, pcm.samples)

    def windows(
        self,
        pcm: PcmFile,
        vad_filter: bool,
        found: list[SpeechRegion],
        vad_seconds: Callable[[float], None],
    ) -> Iterator[Window]:
        """Windows of the speech as VAD finds it, cut at pauses; every region found is
        also appended to `found` (complete once the iterator is exhausted), and the
        seconds VAD took are handed to `vad_seconds` at the end."""
        return stream_windows(self._regions_as_found(pcm, vad_filter, found, vad_seconds))

    def _regions_as_found(
        self,
        pcm: PcmFile,
        vad_filter: bool,
        found: list[SpeechRegion],
        vad_seconds: Callable[[float], None],
    ) -> Iterator[SpeechRegion]:
        if not vad_filter:
            found.extend(_whole(pcm))
            yield from found
            return
        finder = RegionFinder(pcm.samples, WINDOWED_VAD)
        pieces = probability_blocks(pcm, slots=self._slots)
        spent = 0.0
        while True:
            started = time.perf_counter()
            piece = next(pieces, None)
            regions = finder.feed(piece) if piece is not None else finder.finish()
            spent += time.perf_counter() - started
            for region in regions:
                found.append(region)
                yield region
            if piece is None:
                vad_seconds(spent)
                return


def _whole(pcm: PcmFile) -> list[SpeechRegion]:
    return split_long([SpeechRegion(0, pcm.samples)]) if pcm.samples else []
