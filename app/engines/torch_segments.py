"""The torch engine's passes over a window and where their segments land: the features a
pass starts from, the segments a pass found (placed on the window's time line with their
words), and the windows' places on the recording's time line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from app.domain import Segment, Word
from app.engines.timestamp_tokens import TimedPiece
from app.engines.torch_audio import SAMPLE_RATE, WINDOW_SAMPLES
from app.engines.torch_decoding import WindowResult


def features_from(mels: Any, todo: list[tuple[int, int]]) -> Any:
    """The features of each (window, first frame): the window's own, shifted left and
    padded with zero frames, as the sequential decoder slices them when it seeks."""
    rows = []
    for i, seek in todo:
        mel = mels[i]
        if seek:
            mel = torch.nn.functional.pad(mel[:, seek:], (0, seek))
        rows.append(mel)
    return torch.stack(rows)


def pass_segments(
    pieces: list[TimedPiece],
    result: WindowResult,
    tokenizer: Any,
    words: list[tuple[Word, int]],
    seek: int,
    eot: int,
) -> list[Segment]:
    """One pass's segments on the window's time line, each with its words (handed out in
    order by their token counts)."""
    offset_ms = seek * 10
    queue = list(words)
    out = []
    for piece in pieces:
        text = [t for t in piece.tokens if t < eot]
        if not text:
            continue
        mine: list[Word] = []
        taken = 0
        while queue and taken < len(text):
            word, count = queue.pop(0)
            mine.append(word.shifted(offset_ms))
            taken += count
        out.append(
            Segment(
                id=0,
                start_ms=offset_ms + round(piece.start_s * 1000),
                end_ms=offset_ms + round(piece.end_s * 1000),
                text=tokenizer.decode(text),
                words=tuple(mine),
                tokens=piece.tokens,
                temperature=result.temperature,
                avg_logprob=result.avg_logprob,
                compression_ratio=result.compression_ratio,
                no_speech_prob=result.no_speech_prob,
            )
        )
    return out


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def shifted(segment: Segment, offset_ms: int, index: int, seek: int) -> Segment:
    """A window's segment placed on the audio's time line."""
    return replace(segment.shifted(offset_ms), id=index, seek=seek)


def sample_bounds(total: int, windows: list[tuple[float, float]] | None) -> list[tuple[int, int]]:
    """The windows in samples; without them, 30 s pieces of the whole audio."""
    if windows:
        return [(round(a * SAMPLE_RATE), min(round(b * SAMPLE_RATE), total)) for a, b in windows]
    return [(s, min(s + WINDOW_SAMPLES, total)) for s in range(0, total, WINDOW_SAMPLES)]
