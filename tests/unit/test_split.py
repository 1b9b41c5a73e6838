"""A speaker whose windows of speech are two voices becomes two speakers, cut where the
voice changes (orchestration: a fake embedding that reads the voice off the samples, with
a little noise so that one voice's windows are a cloud, not one point)."""

from __future__ import annotations

import numpy as np

from app.diarization.diarizer import SpeakerTurn
from app.diarization.split import split_labels, split_mixed_speakers

RATE = 16000
VOICES = {1.0: [1.0, 0.0, 0.0, 0.0], 2.0: [0.0, 1.0, 0.0, 0.0], 1.1: [0.97, 0.24, 0.0, 0.0]}


def recording(*parts: tuple[float, float]) -> np.ndarray:
    return np.concatenate([np.full(int(s * RATE), v, dtype=np.float32) for v, s in parts])


def embed_many(wavs: list[np.ndarray]) -> np.ndarray:
    rng = np.random.default_rng(len(wavs))
    base = np.array([VOICES[round(float(np.median(w)), 1)] for w in wavs])
    return base + 0.02 * rng.standard_normal(base.shape)


def test_two_voices_in_one_speaker_are_cut_apart_where_the_voice_changes() -> None:
    # A: voice 1 for 12 s, then voice 2 for 12 s in the same turn; B: voice 1.1 (close to 1).
    samples = recording((1.0, 12), (2.0, 12), (1.1, 0.8), (2.0, 1.0))
    turns = [
        SpeakerTurn(0, 24_000, "SPEAKER_00"),
        SpeakerTurn(24_000, 24_800, "SPEAKER_01"),
        SpeakerTurn(24_800, 25_800, "SPEAKER_00"),  # shorter than a window
    ]
    found = split_mixed_speakers(turns, samples, RATE, embed_many, split_above=0.22)
    assert found.splits == 1
    assert [(t.start_ms, t.end_ms, t.speaker) for t in found.turns] == [
        (0, 12_000, "SPEAKER_00"),
        (12_000, 24_000, "SPEAKER_02"),
        (24_000, 24_800, "SPEAKER_01"),
        (24_800, 25_800, "SPEAKER_02"),  # with its speaker's window nearest in time
    ]
    assert set(found.centroids) == {"SPEAKER_00", "SPEAKER_02"}


def test_one_voice_stays_one_speaker_and_close_voices_are_not_split() -> None:
    samples = recording((1.0, 12), (1.1, 12))  # 0.03 apart: one voice in two conditions
    turns = [SpeakerTurn(0, 24_000, "SPEAKER_00")]
    found = split_mixed_speakers(turns, samples, RATE, embed_many, split_above=0.22)
    assert found.splits == 0 and found.turns == tuple(turns)


def test_too_few_windows_and_most_speakers_stop_a_split() -> None:
    samples = recording((1.0, 6), (2.0, 6))  # 3 windows a side, fewer than 5
    turns = [SpeakerTurn(0, 12_000, "SPEAKER_00")]
    assert split_mixed_speakers(turns, samples, RATE, embed_many, 0.22).splits == 0
    vectors = np.array([VOICES[1.0]] * 6 + [VOICES[2.0]] * 6)
    labels = ["A"] * 12
    assert split_labels(vectors, labels, 0.22, fewest=5, most_speakers=1) == labels
    assert len(set(split_labels(vectors, labels, 0.22, fewest=5))) == 2
