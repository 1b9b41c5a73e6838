"""How many speakers, counted from the embeddings' own affinity graph instead of one
linkage distance: an experiment for issue 27, kept in the bench because it lost.

A fixed linkage distance fits the material it was tuned on: the threshold that keeps two
similar women apart on clean speech splits one voice on a noisy phone line. Spectral
counting asks a relative question instead. Every chunk-level embedding keeps its `p` most
similar neighbours (a k-nearest-neighbour graph of cosine similarity); the graph's
Laplacian then has one near-zero eigenvalue per group of voices that link mostly among
themselves, and the count is where the eigenvalues jump. `p` is chosen per recording as
the value that makes that jump clearest for the fewest neighbours (the normalised maximum
eigengap criterion of Park et al., 2019).

Measured on the real-voice development part (bench/RESULTS.md, "Counting speakers from
the graph"): it gets the two similar women right in all three forms where the service's
distance merges them, but it splits one woman recorded in two languages, over-splits the
mixes of pyannote's sample (5 and 4 speakers for 3) and the synthetic conversations (6 for
3), and puts a phantom speaker into pyannote's sample at 32 kbit/s as the distance does.
On 30-120 embeddings per file the graph's eigengaps are too noisy to trust, so the
service keeps the distance; `diar_sweep.py --configs campplus3+r@0.65/0.25/12/spectral`
reruns the experiment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from scipy.linalg import eigh

from app.diarization.diarizer import unit_rows

SMALLEST_NEIGHBOURS = 4
SMALLEST_NEIGHBOUR_SHARE = 0.2
"""`p` is searched from this share of the embeddings (at least SMALLEST_NEIGHBOURS):
sparser graphs fall apart into fragments of one voice, each read as a speaker."""
LARGEST_NEIGHBOUR_SHARE = 0.35
"""`p` is searched up to this share of the embeddings."""


@dataclass(frozen=True)
class SpeakerCount:
    count: int
    neighbours: int
    """The `p` chosen: neighbours kept per embedding."""
    gap: float
    """The eigengap at `count`, over the largest eigenvalue: how clear the count is
    (near 0: no structure; the count is a guess)."""


def _laplacian_eigenvalues(
    similarity: np.ndarray, neighbours: int, largest: int
) -> tuple[np.ndarray, float]:
    """The `largest` + 1 smallest eigenvalues of the p-nearest-neighbour graph's
    Laplacian, and its largest one."""
    n = len(similarity)
    keep = np.argsort(-similarity, axis=1)[:, :neighbours]
    binary = np.zeros((n, n))
    np.put_along_axis(binary, keep, 1.0, axis=1)
    affinity = (binary + binary.T) / 2
    laplacian = np.diag(affinity.sum(axis=1)) - affinity
    values = eigh(laplacian, eigvals_only=True)
    return np.asarray(values[: largest + 1]), float(values[-1])


def count_speakers(
    embeddings: np.ndarray, min_speakers: int = 1, max_speakers: int = 8
) -> SpeakerCount:
    """The number of voices among `embeddings` (n, d), within [min, max]. With fewer than
    4 embeddings there is no graph to read: the smallest count allowed."""
    n = len(embeddings)
    max_speakers = max(min(max_speakers, n - 1), min_speakers)
    if n < 4 or max_speakers <= 1:
        return SpeakerCount(max(min_speakers, 1), 0, 0.0)
    units = unit_rows(embeddings)
    similarity = units @ units.T
    low = max(SMALLEST_NEIGHBOURS, int(n * SMALLEST_NEIGHBOUR_SHARE))
    top = max(low, int(n * LARGEST_NEIGHBOUR_SHARE))
    best: SpeakerCount | None = None
    best_ratio = np.inf
    for p in sorted(set(np.linspace(low, top, num=min(top - low + 1, 20)).astype(int))):
        values, largest = _laplacian_eigenvalues(similarity, p, max_speakers)
        gaps = np.diff(values)  # gaps[i]: between the (i+1)-th and (i+2)-th smallest
        window = gaps[min_speakers - 1 : max_speakers]
        if len(window) == 0:
            continue
        k = int(np.argmax(window)) + min_speakers
        gap = float(window[k - min_speakers]) / (largest + 1e-10)
        ratio = p / max(gap, 1e-10)
        if ratio < best_ratio:
            best_ratio, best = ratio, SpeakerCount(k, p, gap)
    return best or SpeakerCount(max(min_speakers, 1), 0, 0.0)


log = logging.getLogger(__name__)

UNBOUNDED_MOST_SPEAKERS = 10
"""The most speakers counted when the request sets no `max_speakers` (pyannote then
passes the number of embeddings as the bound, which would let a graph of scattered
embeddings read as dozens of voices)."""


class CountedClustering(AgglomerativeClustering):
    """Centroid linkage, cut at the linkage threshold (or, `by_graph`, at the graph's
    count: pyannote walks the dendrogram outwards from the threshold to that cut). Both
    counts are kept (`last_counts`) so that a disagreement can be reported. A
    `num_speakers` asked for is used as is; `min_speakers` / `max_speakers` bound both."""

    def __init__(self, *, by_graph: bool = False, metric: str = "cosine") -> None:
        super().__init__(metric=metric)
        self.by_graph = by_graph

    last_counts: tuple[int, int] | None = None
    """(the graph's count, the threshold's) of the last call without `num_speakers`; the
    caller holds the pipeline's lock across the call and the read."""

    def cluster(
        self,
        embeddings: np.ndarray,
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        num_clusters: int | None = None,
    ) -> Any:
        self.last_counts = None
        if num_clusters is not None:
            return super().cluster(embeddings, min_clusters, max_clusters, num_clusters)
        most = max_clusters or len(embeddings)
        if most >= len(embeddings):
            most = max(UNBOUNDED_MOST_SPEAKERS, min_clusters or 1)
        found = count_speakers(embeddings, min_clusters or 1, most)
        by_threshold = super().cluster(embeddings.copy(), min_clusters, max_clusters, None)
        threshold_count = len(set(by_threshold.tolist()))
        log.debug(
            "%d embeddings: %d speakers by the graph (p=%d, gap %.3f), %d by the threshold",
            len(embeddings),
            found.count,
            found.neighbours,
            found.gap,
            threshold_count,
        )
        self.last_counts = (found.count, threshold_count)
        if found.count == threshold_count or not self.by_graph:
            return by_threshold
        return super().cluster(embeddings, min_clusters, max_clusters, found.count)
