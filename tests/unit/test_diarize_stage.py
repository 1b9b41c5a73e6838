"""The diarization stage's orchestration: what the diarizer hears and how its turns come
back (a fake diarizer that reports what it was given)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.diarization.diarizer import Diarization, SpeakerTurn
from app.diarization.service import DiarizationResult
from app.domain import Audio, SpeakerLimits
from app.pipeline.diarize import diarize_recording
from app.pipeline.pcm import PcmFile
from app.pipeline.vad import SpeechRegion

SR = 16000


class HeardDiarizer:
    """Says one speaker talked through everything it heard; remembers what that was."""

    threshold = 0.65

    def __init__(self) -> None:
        self.heard: list[np.ndarray] = []

    def diarize(
        self, audio: Audio, limits: SpeakerLimits, progress: Callable[[float], None]
    ) -> DiarizationResult:
        progress(0.5)  # half way through this span
        samples = np.asarray(audio.samples)
        self.heard.append(samples)
        turn = SpeakerTurn(0, len(samples) * 1000 // SR, "A")
        return DiarizationResult(Diarization((turn,), {"A": [1.0, 0.0]}, "fake"))


def recording(tmp_path: Path, seconds: int, speech: list[tuple[int, int]]) -> PcmFile:
    """Silence with a constant 'speech' level inside each (start, end) second range."""
    samples = np.zeros(seconds * SR, dtype="<i2")
    for start, end in speech:
        samples[start * SR : end * SR] = 1000
    path = tmp_path / "audio.pcm"
    samples.tofile(path)
    return PcmFile(path)


def run(
    pcm: PcmFile,
    regions: list[SpeechRegion],
    progress: Callable[[float], None] = lambda _: None,
    **kw: Any,
) -> tuple[HeardDiarizer, Any]:
    diarizer = HeardDiarizer()
    result = diarize_recording(
        diarizer,  # type: ignore[arg-type]
        pcm,
        regions,
        SpeakerLimits(),
        progress,
        **kw,
    )
    return diarizer, result.diarization


def test_long_silence_is_not_heard_and_turns_come_back_in_recording_time(
    tmp_path: Path,
) -> None:
    pcm = recording(tmp_path, 60, [(2, 7), (9, 12), (40, 45)])
    regions = [SpeechRegion(2 * SR, 7 * SR), SpeechRegion(9 * SR, 12 * SR)]
    regions.append(SpeechRegion(40 * SR, 45 * SR))
    diarizer, found = run(pcm, regions)
    # One call: 2-12 s (the 2 s pause heard) and 40-45 s; the 28 s of silence left out.
    assert [len(h) / SR for h in diarizer.heard] == [15.0]
    assert np.count_nonzero(diarizer.heard[0] == 0) == 2 * SR
    assert [(t.start_ms, t.end_ms) for t in found.turns] == [(2_000, 12_000), (40_000, 45_000)]


def test_more_speech_than_a_chunk_is_diarized_in_spans_and_linked(tmp_path: Path) -> None:
    pcm = recording(tmp_path, 40, [(0, 8), (9, 17), (30, 38)])
    regions = [SpeechRegion(s * SR, e * SR) for s, e in ((0, 8), (9, 17), (30, 38))]
    diarizer, found = run(pcm, regions, chunk=10 * SR)
    assert [len(h) / SR for h in diarizer.heard] == [8.0, 8.0, 8.0]
    # The same voice in each span (same centroid): one speaker.
    assert {t.speaker for t in found.turns} == {"S0"}
    assert [(t.start_ms, t.end_ms) for t in found.turns] == [
        (0, 8_000),
        (9_000, 17_000),
        (30_000, 38_000),
    ]


def test_progress_moves_within_each_span_and_never_back(tmp_path: Path) -> None:
    pcm = recording(tmp_path, 40, [(0, 8), (9, 17), (30, 38)])
    regions = [SpeechRegion(s * SR, e * SR) for s, e in ((0, 8), (9, 17), (30, 38))]
    reported: list[float] = []
    run(pcm, regions, reported.append, chunk=10 * SR)
    assert reported == sorted(reported)
    # Each span's own progress (half way) shows between the spans' ends.
    assert [round(f, 3) for f in reported] == [0.167, 0.333, 0.5, 0.667, 0.833, 1.0]
