"""Voice activity detection over a PCM file, a block at a time.

The model is the Silero VAD that ships inside faster-whisper. Its speech probabilities are
computed here block by block, carrying the network's recurrent state and frame context
across blocks exactly as faster-whisper does over one array, so the speech regions are the
same as faster-whisper's own `vad_filter` finds (tests/unit/test_vad.py checks this), while
memory holds one block (320 s) instead of the whole recording.

Blocks of near-digital silence (peak below -60 dBFS for the whole 320 s) skip the network:
a 3-hour upload of silence is answered in seconds. The recurrent state is reset after such
a block, as at the start of a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from app.pipeline.pcm import SAMPLE_RATE, PcmFile

FRAME = 512  # samples per VAD decision (32 ms)
_CONTEXT = 64  # samples of the previous frame the network sees with each frame
_BATCH_FRAMES = 10_000  # frames per block read from disk (320 s; the silence gate's unit)
# Frames per network call. The network carries its state from frame to frame, so shorter
# calls give the very same probabilities (checked bit for bit), while a call over a whole
# block holds ~120 MB of activations.
_NETWORK_FRAMES = 1_000
_SILENT_PEAK = 10 ** (-60 / 20)


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's VadOptions defaults (what `vad_filter=True` used before)."""

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400


@dataclass(frozen=True)
class SpeechRegion:
    """Speech between two sample positions of the recording, [start, end)."""

    start: int
    end: int

    @property
    def samples(self) -> int:
        return self.end - self.start


def _silero_session() -> object:
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session


def speech_probabilities(
    pcm: PcmFile, progress: Callable[[float], None] | None = None
) -> np.ndarray:
    """One probability per 32 ms frame of the file (float32), computed a block at a time."""
    parts = list(probability_blocks(pcm, progress))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def probability_blocks(
    pcm: PcmFile,
    progress: Callable[[float], None] | None = None,
    slots: AbstractContextManager[object] | None = None,
) -> Iterator[np.ndarray]:
    """The file's frame probabilities, a network call (32 s) or a silent block at a time.
    `slots` is held while each piece is computed (VAD_THREADS), not between pieces."""
    session = _silero_session()
    total = pcm.samples
    padded_total = total + FRAME - total % FRAME  # faster-whisper always pads, even a full frame
    block = _BATCH_FRAMES * FRAME
    state = np.zeros((2, 1, 1, 128), dtype=np.float32)  # (h, c)
    context = np.zeros((1, _CONTEXT), dtype=np.float32)
    for start in range(0, padded_total, block):
        samples = pcm.read(start, min(start + block, total))
        length = min(block, padded_total - start)
        if len(samples) < length:
            samples = np.pad(samples, (0, length - len(samples)))
        frames = samples.reshape(-1, FRAME)
        if np.abs(samples).max(initial=0.0) < _SILENT_PEAK:
            yield np.zeros(len(frames), dtype=np.float32)
            state[:] = 0.0
            context = np.zeros((1, _CONTEXT), dtype=np.float32)
        else:
            contexts = np.concatenate([context, frames[:-1, -_CONTEXT:]], axis=0)
            batch = np.concatenate([contexts, frames], axis=1)
            for at in range(0, len(batch), _NETWORK_FRAMES):
                with slots or nullcontext():
                    probs, h, c = session.run(  # type: ignore[attr-defined]
                        None,
                        {"input": batch[at : at + _NETWORK_FRAMES], "h": state[0], "c": state[1]},
                    )
                state = np.stack([h, c])
                yield np.asarray(probs, dtype=np.float32).reshape(-1)
            context = frames[-1:, -_CONTEXT:].copy()
        if progress is not None:
            progress(min(1.0, (start + length) / padded_total))


def speech_regions(
    probabilities: np.ndarray, total_samples: int, options: VadOptions | None = None
) -> list[SpeechRegion]:
    """Silero's hysteresis over frame probabilities: speech starts above `threshold`, ends
    after `min_silence_duration_ms` below `neg_threshold`; regions longer than
    `max_speech_duration_s` are cut at their last short pause (else hard); each region is
    padded by `speech_pad_ms`, sharing the gap when neighbours are close."""
    finder = RegionFinder(total_samples, options)
    return [*finder.feed(probabilities), *finder.finish()]


class RegionFinder:
    """`speech_regions` over probabilities that arrive a piece at a time: each region comes
    out as soon as it can no longer change (its padding waits for the next region's
    start), the same regions as one pass over all of them."""

    def __init__(self, total_samples: int, options: VadOptions | None = None) -> None:
        o = self._options = options or VadOptions()
        self._neg = (
            o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
        )
        self._min_speech = SAMPLE_RATE * o.min_speech_duration_ms / 1000
        self._pad = SAMPLE_RATE * o.speech_pad_ms / 1000
        self._max_speech = SAMPLE_RATE * o.max_speech_duration_s - FRAME - 2 * self._pad
        self._min_silence = SAMPLE_RATE * o.min_silence_duration_ms / 1000
        self._min_silence_at_max = SAMPLE_RATE * 98 / 1000
        self._total = total_samples
        self._frames = 0  # frames seen so far
        self._speaking = False
        self._start = 0
        self._silence_from = 0  # where the current run of silence began (0 = none)
        self._last_pause = self._resume = 0  # a cut point for over-long speech, and resumption
        self._pending: list[list[int]] = []  # found, not yet padded and handed out
        self._handed_out = 0

    def feed(self, probabilities: np.ndarray) -> list[SpeechRegion]:
        threshold, neg = self._options.threshold, self._neg
        found = self._pending
        for p in probabilities.tolist():
            at = FRAME * self._frames
            self._frames += 1
            if p >= threshold and self._silence_from:
                self._silence_from = 0
                if self._resume < self._last_pause:
                    self._resume = at
            if p >= threshold and not self._speaking:
                self._speaking, self._start = True, at
                continue
            if self._speaking and at - self._start > self._max_speech:
                if self._last_pause:  # cut at the last pause; this frame is judged as usual
                    found.append([self._start, self._last_pause])
                    if self._resume < self._last_pause:
                        self._speaking = False  # still in that pause: speech has not resumed
                    else:
                        self._start = self._resume
                    self._last_pause = self._resume = self._silence_from = 0
                else:
                    found.append([self._start, at])
                    self._speaking = False
                    self._last_pause = self._resume = self._silence_from = 0
                    continue
            if p < neg and self._speaking:
                if not self._silence_from:
                    self._silence_from = at
                if at - self._silence_from > self._min_silence_at_max:
                    self._last_pause = self._silence_from
                if at - self._silence_from < self._min_silence:
                    continue
                if self._silence_from - self._start > self._min_speech:
                    found.append([self._start, self._silence_from])
                self._speaking = False
                self._last_pause = self._resume = self._silence_from = 0
        return self._padded(final=False)

    def finish(self) -> list[SpeechRegion]:
        if self._speaking and self._total - self._start > self._min_speech:
            self._pending.append([self._start, self._total])
        self._speaking = False
        return self._padded(final=True)

    def _padded(self, final: bool) -> list[SpeechRegion]:
        pad, found, out = self._pad, self._pending, []
        while len(found) >= 2 or (final and found):
            region = found[0]
            if self._handed_out == 0:
                region[0] = int(max(0, region[0] - pad))
            if len(found) >= 2:
                following = found[1]
                gap = following[0] - region[1]
                if gap < 2 * pad:
                    region[1] += int(gap // 2)
                    following[0] = int(max(0, following[0] - gap // 2))
                else:
                    region[1] = int(min(self._total, region[1] + pad))
                    following[0] = int(max(0, following[0] - pad))
            else:
                region[1] = int(min(self._total, region[1] + pad))
            out.append(SpeechRegion(region[0], region[1]))
            found.pop(0)
            self._handed_out += 1
        return out
