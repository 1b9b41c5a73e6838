"""Turns moved to the speaker whose centroid is nearest their own embedding (orchestration:
a fake embedding that reads the voice off the samples)."""

from __future__ import annotations

import numpy as np

from app.diarization.diarizer import SpeakerTurn
from app.diarization.reassign import reassign_turns

RATE = 16000
VOICES = {1.0: [1.0, 0.0, 0.0], 2.0: [0.0, 1.0, 0.0], 3.0: [0.0, 0.2, 1.0]}


def recording(*parts: tuple[float, float]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(voice, seconds) parts back to back -> samples whose value is the voice."""
    pieces, spans, at = [], [], 0
    for voice, seconds in parts:
        n = int(seconds * RATE)
        pieces.append(np.full(n, voice, dtype=np.float32))
        spans.append((at * 1000 // RATE, (at + n) * 1000 // RATE))
        at += n
    return np.concatenate(pieces), spans


def embed_many(wavs: list[np.ndarray]) -> np.ndarray:
    return np.array([VOICES[float(np.median(w))] for w in wavs])


CENTROIDS = {"A": [1.0, 0.1, 0.0], "B": [0.0, 1.0, 0.1], "C": [0.0, 0.1, 1.0]}


def test_a_turn_labelled_as_its_neighbours_goes_to_its_own_speaker() -> None:
    samples, spans = recording((1.0, 3), (3.0, 1.8), (1.0, 3), (2.0, 2))
    turns = [SpeakerTurn(s, e, label) for (s, e), label in zip(spans, "AAAB", strict=True)]
    moved, count = reassign_turns(turns, CENTROIDS, samples, RATE, embed_many)
    assert [t.speaker for t in moved] == ["A", "C", "A", "B"]
    assert count == 1
    assert [(t.start_ms, t.end_ms) for t in moved] == spans  # times never change


def test_short_turns_and_turns_without_a_centroid_keep_their_label() -> None:
    samples, spans = recording((1.0, 3), (3.0, 0.4), (2.0, 2), (3.0, 2))
    turns = [SpeakerTurn(s, e, label) for (s, e), label in zip(spans, "AAAX", strict=True)]
    moved, count = reassign_turns(turns, CENTROIDS, samples, RATE, embed_many)
    # 0.4 s of voice 3 is too short to judge; X has no centroid; voice 2 was wrong and moves.
    assert [t.speaker for t in moved] == ["A", "A", "B", "X"]
    assert count == 1


def test_one_speaker_or_no_usable_centroid_changes_nothing() -> None:
    samples, spans = recording((1.0, 3), (2.0, 3))
    turns = [SpeakerTurn(s, e, "A") for s, e in spans]
    assert reassign_turns(turns, {"A": [1.0, 0.0, 0.0]}, samples, RATE, embed_many) == (
        tuple(turns),
        0,
    )
    nan = {"A": [float("nan")] * 3, "B": [0.0, 0.0, 0.0]}
    assert reassign_turns(turns, nan, samples, RATE, embed_many) == (tuple(turns), 0)
