"""Pairing known speaker samples with diarized speakers (the matching only; the voices of
real samples are tested end to end in tests/test_e2e_diarization.py)."""

from __future__ import annotations

import numpy as np

from app.diarization.references import name_speakers


def _voice(angle_degrees: float) -> list[float]:
    """A unit vector in a plane at `angle_degrees` from the x axis: cosine distances are
    then exact, 1 - cos(difference)."""
    a = np.radians(angle_degrees)
    return [float(np.cos(a)), float(np.sin(a)), 0.0]


SPEAKERS = {"S0": _voice(0), "S1": _voice(60), "S2": _voice(120)}


def test_each_name_goes_to_its_nearest_voice_one_to_one() -> None:
    refs = [("Bea", _voice(58)), ("Al", _voice(3))]
    assert name_speakers(SPEAKERS, refs, max_distance=0.12) == {"S1": "Bea", "S0": "Al"}


def test_a_name_too_far_from_every_voice_names_nobody() -> None:
    # 30 degrees from S0 and S1: cosine distance 0.134, past the threshold.
    assert name_speakers(SPEAKERS, [("Mallory", _voice(30))], max_distance=0.12) == {}
    assert name_speakers(SPEAKERS, [("Mallory", _voice(30))], max_distance=0.14) in (
        {"S0": "Mallory"},
        {"S1": "Mallory"},
    )


def test_two_names_never_share_a_speaker() -> None:
    # Both samples sit nearest S0; the assignment gives S0 to the nearer one only, and the
    # other is left unnamed rather than put on a voice it does not match.
    refs = [("Al", _voice(1)), ("Alan", _voice(5))]
    assert name_speakers(SPEAKERS, refs, max_distance=0.12) == {"S0": "Al"}


def test_several_samples_of_one_name_are_matched_on_their_mean() -> None:
    refs = [("Bea", _voice(50)), ("Bea", _voice(70))]
    assert name_speakers(SPEAKERS, refs, max_distance=0.05) == {"S1": "Bea"}


def test_unusable_vectors_are_ignored() -> None:
    refs = [("Al", [0.0, 0.0, 0.0]), ("Bea", [float("nan"), 1.0, 0.0])]
    assert name_speakers(SPEAKERS, refs, max_distance=1.0) == {}
    assert name_speakers({}, [("Al", _voice(0))], max_distance=1.0) == {}
