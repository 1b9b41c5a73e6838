"""Clusters pointing the same way are joined; different voices, and the counts asked for,
are kept (app/diarization/clustering.py)."""

from __future__ import annotations

import numpy as np

from app.diarization.clustering import join_close_clusters


def _cloud(direction: np.ndarray, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    return direction + spread * rng.standard_normal((n, direction.size))


def test_two_halves_of_one_voice_are_joined_two_voices_kept() -> None:
    rng = np.random.default_rng(0)
    voice, other = np.eye(8)[0], np.eye(8)[1]
    x = np.vstack([_cloud(voice, 6, 0.05, rng), _cloud(voice, 4, 0.05, rng)])
    x = np.vstack([x, _cloud(other, 5, 0.05, rng)])
    labels = np.array([0] * 6 + [1] * 4 + [2] * 5)
    joined = join_close_clusters(x, labels, join_below=0.265)
    assert joined.tolist() == [0] * 10 + [1] * 5


def test_nothing_is_joined_at_or_above_the_bar_or_below_fewest() -> None:
    rng = np.random.default_rng(1)
    a, b = np.eye(4)[0], np.eye(4)[1]
    x = np.vstack([_cloud(a, 5, 0.01, rng), _cloud(b, 5, 0.01, rng)])  # ~1.0 apart
    labels = np.array([1] * 5 + [0] * 5)
    assert join_close_clusters(x, labels, 0.265).tolist() == [0] * 5 + [1] * 5
    same = np.vstack([_cloud(a, 5, 0.01, rng), _cloud(a, 5, 0.01, rng)])
    assert len(set(join_close_clusters(same, labels, 0.265, fewest=2).tolist())) == 2
    assert len(set(join_close_clusters(same, labels, 0.265, fewest=1).tolist())) == 1
