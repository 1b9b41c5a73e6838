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
    session = _silero_session()
    total = pcm.samples
    padded_total = total + FRAME - total % FRAME  # faster-whisper always pads, even a full frame
    block = _BATCH_FRAMES * FRAME
    state = np.zeros((2, 1, 1, 128), dtype=np.float32)  # (h, c)
    context = np.zeros((1, _CONTEXT), dtype=np.float32)
    out: list[np.ndarray] = []
    for start in range(0, padded_total, block):
        samples = pcm.read(start, min(start + block, total))
        length = min(block, padded_total - start)
        if len(samples) < length:
            samples = np.pad(samples, (0, length - len(samples)))
        frames = samples.reshape(-1, FRAME)
        if np.abs(samples).max(initial=0.0) < _SILENT_PEAK:
            out.append(np.zeros(len(frames), dtype=np.float32))
            state[:] = 0.0
            context = np.zeros((1, _CONTEXT), dtype=np.float32)
        else:
            contexts = np.concatenate([context, frames[:-1, -_CONTEXT:]], axis=0)
            batch = np.concatenate([contexts, frames], axis=1)
            for at in range(0, len(batch), _NETWORK_FRAMES):
                probs, h, c = session.run(  # type: ignore[attr-defined]
                    None, {"input": batch[at : at + _NETWORK_FRAMES], "h": state[0], "c": state[1]}
                )
                state = np.stack([h, c])
                out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
            context = frames[-1:, -_CONTEXT:].copy()
        if progress is not None:
            progress(min(1.0, (start + length) / padded_total))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def speech_regions(
    probabilities: np.ndarray, total_samples: int, options: VadOptions | None = None
) -> list[SpeechRegion]:
    """Silero's hysteresis over frame probabilities: speech starts above `threshold`, ends
    after `min_silence_duration_ms` below `neg_threshold`; regions longer than
    `max_speech_duration_s` are cut at their last short pause (else hard); each region is
    padded by `speech_pad_ms`, sharing the gap when neighbours are close."""
    o = options or VadOptions()
    neg = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
    min_speech = SAMPLE_RATE * o.min_speech_duration_ms / 1000
    pad = SAMPLE_RATE * o.speech_pad_ms / 1000
    max_speech = SAMPLE_RATE * o.max_speech_duration_s - FRAME - 2 * pad
    min_silence = SAMPLE_RATE * o.min_silence_duration_ms / 1000
    min_silence_at_max = SAMPLE_RATE * 98 / 1000

    found: list[list[int]] = []
    speaking = False
    start = 0
    silence_from = 0  # where the current run of silence began (0 = none)
    last_pause = resume = 0  # a cut point for over-long speech, and where speech resumed
    for i, p in enumerate(probabilities.tolist()):
        at = FRAME * i
        if p >= o.threshold and silence_from:
            silence_from = 0
            if resume < last_pause:
                resume = at
        if p >= o.threshold and not speaking:
            speaking, start = True, at
            continue
        if speaking and at - start > max_speech:
            if last_pause:  # cut at the last pause; this frame is then judged as usual
                found.append([start, last_pause])
                if resume < last_pause:
                    speaking = False  # still in that pause: speech has not resumed
                else:
                    start = resume
                last_pause = resume = silence_from = 0
            else:
                found.append([start, at])
                speaking = False
                last_pause = resume = silence_from = 0
                continue
        if p < neg and speaking:
            if not silence_from:
                silence_from = at
            if at - silence_from > min_silence_at_max:
                last_pause = silence_from
            if at - silence_from < min_silence:
                continue
            if silence_from - start > min_speech:
                found.append([start, silence_from])
            speaking = False
            last_pause = resume = silence_from = 0
    if speaking and total_samples - start > min_speech:
        found.append([start, total_samples])
    return list(_padded(found, pad, total_samples))


def _padded(found: list[list[int]], pad: float, total: int) -> Iterator[SpeechRegion]:
    for i, region in enumerate(found):
        if i == 0:
            region[0] = int(max(0, region[0] - pad))
        if i + 1 < len(found):
            following = found[i + 1]
            gap = following[0] - region[1]
            if gap < 2 * pad:
                region[1] += int(gap // 2)
                following[0] = int(max(0, following[0] - gap // 2))
            else:
                region[1] = int(min(total, region[1] + pad))
                following[0] = int(max(0, following[0] - pad))
        else:
            region[1] = int(min(total, region[1] + pad))
    for start, end in found:
        yield SpeechRegion(start, end)
