"""pyannote's centroid linkage, then one more look: speakers whose voices point the same way
are one speaker.

The linkage threshold is a Euclidean distance between means of unit-length embeddings, and a
mean's length shrinks as its chunks spread out: codec damage, the telephone band or a
cluster of two or four chunks move two halves of one voice apart in that distance while
their directions stay close. Measured on real voices (bench/RESULTS.md, "One voice, two
speakers"): on pyannote's sample as 24 and 32 kbit/s Opus, and on one of its women alone,
the same woman came back as two speakers whose centroids were 0.235-0.255 apart in cosine
distance, while every pair of different people in the development set's real-voice and
synthetic files that the linkage kept apart sat at 0.280 or more. Clusters closer than
`join_below` in direction are joined, nearest first, as long as more clusters remain than
`min_speakers` asks for; a `num_speakers` asked for is used as is.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyannote.audio.pipelines.clustering import AgglomerativeClustering

from app.diarization.diarizer import unit_rows

log = logging.getLogger(__name__)


def join_close_clusters(
    embeddings: np.ndarray, labels: np.ndarray, join_below: float, fewest: int = 1
) -> np.ndarray:
    """`labels` (one cluster per embedding) with every pair of clusters whose mean
    directions lie less than `join_below` apart (cosine distance) joined, closest pair
    first, never below `fewest` clusters; labels renumbered 0..k-1 in order of first use."""
    units = unit_rows(embeddings)
    labels = labels.copy()
    while True:
        clusters = sorted(set(labels.tolist()))
        if len(clusters) <= max(fewest, 1):
            break
        means = unit_rows(np.stack([units[labels == k].mean(axis=0) for k in clusters]))
        distances = 1.0 - means @ means.T
        np.fill_diagonal(distances, np.inf)
        i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
        if distances[i, j] >= join_below:
            break
        log.debug("joined two clusters %.3f apart", distances[i, j])
        labels[labels == clusters[j]] = clusters[i]
    _, first = np.unique(labels, return_index=True)
    order = {int(labels[i]): n for n, i in enumerate(sorted(first))}
    return np.array([order[int(k)] for k in labels], dtype=labels.dtype)


class JoiningClustering(AgglomerativeClustering):
    """AgglomerativeClustering whose clusters pass through `join_close_clusters`."""

    def __init__(self, join_below: float, metric: str = "cosine") -> None:
        super().__init__(metric=metric)
        self.join_below = join_below

    last_joined = 0
    """How many clusters the last call joined into others; the caller holds the pipeline's
    lock across the call and the read."""

    def cluster(
        self,
        embeddings: np.ndarray,
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        num_clusters: int | None = None,
    ) -> Any:
        # The parent normalises its input in place for centroid linkage: give it a copy.
        self.last_joined = 0
        labels = super().cluster(embeddings.copy(), min_clusters, max_clusters, num_clusters)
        if num_clusters is not None or self.join_below <= 0:
            return labels
        fewest = min_clusters or 1
        joined = join_close_clusters(embeddings, np.asarray(labels), self.join_below, fewest)
        self.last_joined = len(set(np.asarray(labels).tolist())) - len(set(joined.tolist()))
        return joined
