"""The diarization stage: long recordings in bounded memory.

A recording up to one chunk long (5 minutes) is diarized whole, as before. A longer one is
cut into spans of at most a chunk, at silences between speech regions, and each span is
diarized on its own; the speakers found in each span are then linked across spans by
agglomerative clustering of their embedding centroids (cosine distance, never merging two
speakers of the same span). Only the spans' turns and a few centroids are kept, never the
audio of the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.allocator import release_free_memory
from app.diarization.diarizer import Diarization, SpeakerLimits, SpeakerTurn
from app.diarization.service import DiarizationResult, DiarizationService
from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.vad import SpeechRegion
from app.pipeline.windows import split_long

CHUNK_SAMPLES = 300 * SAMPLE_RATE


def diarization_spans(
    regions: list[SpeechRegion], total: int, chunk: int = CHUNK_SAMPLES
) -> list[tuple[int, int]]:
    """[start, end) sample spans that cover every speech region, each at most `chunk` long."""
    if total <= chunk:
        return [(0, total)]
    spans: list[tuple[int, int]] = []
    for region in split_long(regions, chunk):
        if spans and region.end - spans[-1][0] <= chunk:
            spans[-1] = (spans[-1][0], region.end)
        else:
            spans.append((region.start, region.end))
    return spans


@dataclass
class _Cluster:
    members: list[str]
    spans: set[int]
    vectors: list[np.ndarray]

    @property
    def centroid(self) -> np.ndarray:
        """The mean of the members' unit vectors (not re-normalised), as pyannote's centroid
        linkage keeps it, so that one threshold means the same here and inside a span."""
        return np.mean([v / (np.linalg.norm(v) or 1.0) for v in self.vectors], axis=0)


def link_speakers(
    local: Sequence[tuple[int, str, list[float] | None]], threshold: float, limits: SpeakerLimits
) -> dict[str, str]:
    """(span, local label, centroid) -> global label. Merges the closest pair of clusters
    from different spans while the Euclidean distance between their centroids (means of
    unit vectors: the geometry of the offline pipeline's own centroid linkage, so the same
    DIARIZATION_THRESHOLD) is under `threshold` (or while there are more clusters than
    `num_speakers` / `max_speakers` allow), never below `num_speakers` / `min_speakers`."""
    clusters = [
        _Cluster([label], {span}, [np.asarray(vector, dtype=np.float64)] if vector else [])
        for span, label, vector in local
    ]
    most = limits.num_speakers or limits.max_speakers
    fewest = limits.num_speakers or limits.min_speakers or 1
    while len(clusters) > fewest:
        best: tuple[float, int, int] | None = None
        for i, a in enumerate(clusters):
            for j in range(i + 1, len(clusters)):
                b = clusters[j]
                if a.spans & b.spans or not a.vectors or not b.vectors:
                    continue
                distance = float(np.linalg.norm(a.centroid - b.centroid))
                if best is None or distance < best[0]:
                    best = (distance, i, j)
        if best is None:
            break
        distance, i, j = best
        if distance >= threshold and (most is None or len(clusters) <= most):
            break
        a, b = clusters[i], clusters.pop(j)
        a.members += b.members
        a.spans |= b.spans
        a.vectors += b.vectors
    return {member: f"S{n}" for n, c in enumerate(clusters) for member in c.members}


def diarize_recording(
    service: DiarizationService,
    pcm: PcmFile,
    regions: list[SpeechRegion],
    limits: SpeakerLimits,
    progress: Callable[[float], None],
    chunk: int = CHUNK_SAMPLES,
) -> DiarizationResult:
    """`chunk`: the longest span diarized at once, in samples (tests make it short)."""
    spans = diarization_spans(regions, pcm.samples, chunk)
    if len(spans) == 1:  # the whole recording at once, exactly as a short file always was
        start, end = spans[0]
        return service.diarize(pcm.audio(start, end), limits)
    # Per span, only the upper bound on speakers holds: a span may hear fewer of them.
    span_limits = SpeakerLimits(max_speakers=limits.num_speakers or limits.max_speakers)
    turns: list[SpeakerTurn] = []
    local: list[tuple[int, str, list[float] | None]] = []
    notes: list[str] = []
    pipeline = ""
    for index, (start, end) in enumerate(spans):
        result = service.diarize(pcm.audio(start, end), span_limits)
        release_free_memory()
        notes.extend(n for n in result.notes if n not in notes)
        progress((index + 1) / len(spans))
        if result.diarization is None:
            return DiarizationResult(None, tuple(notes))
        found = result.diarization
        pipeline = found.pipeline
        offset = start * 1000 // SAMPLE_RATE
        labels = dict.fromkeys(t.speaker for t in found.turns)
        for label in labels:
            local.append((index, f"{index}:{label}", found.embeddings.get(label)))
        turns += [
            replace(
                t,
                start_ms=t.start_ms + offset,
                end_ms=t.end_ms + offset,
                speaker=f"{index}:{t.speaker}",
            )
            for t in found.turns
        ]
    names = link_speakers(local, service.threshold, limits)
    vectors: dict[str, list[np.ndarray]] = {}
    for _, label, vector in local:
        if vector:
            vectors.setdefault(names[label], []).append(np.asarray(vector))
    merged = Diarization(
        tuple(replace(t, speaker=names[t.speaker]) for t in turns),
        {k: [round(float(x), 6) for x in np.mean(v, axis=0)] for k, v in vectors.items()},
        pipeline,
    )
    return DiarizationResult(merged, tuple(notes))
