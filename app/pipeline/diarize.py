"""The diarization stage: only speech, long recordings in bounded memory.

The diarizer hears the VAD's speech regions joined end to end, without the silence, music
or noise of 10 s or more between them, and its turns are mapped back to the recording,
cut where they cross from one region into the next. Shorter pauses stay in: a 10 s
segmentation chunk sees speech on both sides of them, and leaving them out as well
(every non-speech stretch of 2 s or more, as the ASR stage does) measurably hurt
(bench/RESULTS.md, "Only speech": a broadcast's guest merged with another voice without
its jingles, at every chunk grid tried).

Up to one chunk of that (5 minutes) is diarized at once; more is cut into spans of at
most a chunk, at region boundaries, and each span is diarized on its own; the speakers
found in each span are then linked across spans by agglomerative clustering of their
embedding centroids (never merging two speakers of the same span). Only the spans' turns
and a few centroids are kept, never the audio of the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.allocator import release_free_memory
from app.diarization.diarizer import Diarization, SpeakerTurn
from app.diarization.service import DiarizationResult, DiarizationService
from app.domain import Audio, SpeakerLimits
from app.pipeline.pcm import SAMPLE_RATE, PcmFile
from app.pipeline.vad import SpeechRegion
from app.pipeline.windows import Timeline, Window, split_long

CHUNK_SAMPLES = 300 * SAMPLE_RATE
LONGEST_HEARD_GAP = 10 * SAMPLE_RATE


def diarization_spans(
    regions: list[SpeechRegion], chunk: int = CHUNK_SAMPLES, gap: int = LONGEST_HEARD_GAP
) -> list[Window]:
    """What the diarizer hears, span by span: the speech regions in order, a pause shorter
    than `gap` samples heard with them (the regions on each side joined), each span at most
    `chunk` samples long. A span is closed at a region boundary, so a long recording is cut
    at pauses; only a region longer than a chunk is cut inside."""
    spans: list[list[SpeechRegion]] = []
    heard = 0
    for region in split_long(regions, chunk):
        last = spans[-1][-1] if spans else None
        pause = region.start - last.end if last is not None else gap
        cost = region.samples + (pause if pause < gap else 0)
        if last is None or heard + cost > chunk:
            spans.append([region])
            heard = region.samples
            continue
        if pause < gap:
            spans[-1][-1] = SpeechRegion(last.start, region.end)
        else:
            spans[-1].append(region)
        heard += cost
    return [Window(tuple(span)) for span in spans]


def to_recording(
    turns: Sequence[SpeakerTurn], regions: Sequence[SpeechRegion]
) -> list[SpeakerTurn]:
    """Turns in the joined speech of `regions` -> turns in the recording, a turn that runs
    from one region into the next cut in two (the silence left out between them is
    nobody's)."""
    timeline = Timeline(tuple(regions))
    return [
        replace(turn, start_ms=a * 1000 // SAMPLE_RATE, end_ms=b * 1000 // SAMPLE_RATE)
        for turn in turns
        for a, b in timeline.recording_pieces(
            turn.start_ms * SAMPLE_RATE // 1000, turn.end_ms * SAMPLE_RATE // 1000
        )
    ]


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


def _within_span(
    progress: Callable[[float], None], index: int, count: int
) -> Callable[[float], None]:
    """Span `index` of `count`: its own fractions as fractions of the whole recording."""
    return lambda fraction: progress((index + fraction) / count)


def diarize_recording(
    service: DiarizationService,
    pcm: PcmFile,
    regions: list[SpeechRegion],
    limits: SpeakerLimits,
    progress: Callable[[float], None],
    chunk: int = CHUNK_SAMPLES,
) -> DiarizationResult:
    """`chunk`: the longest span diarized at once, in samples (tests make it short)."""
    spans = diarization_spans(regions, chunk)
    if len(spans) == 1:  # all the speech at once: no linking
        span = spans[0]
        result = service.diarize(Audio(span.speech(pcm), SAMPLE_RATE), limits, progress)
        if result.diarization is None:
            return result
        mapped = tuple(to_recording(result.diarization.turns, span.regions))
        return replace(result, diarization=replace(result.diarization, turns=mapped))
    # Per span, only the upper bound on speakers holds: a span may hear fewer of them.
    span_limits = SpeakerLimits(max_speakers=limits.num_speakers or limits.max_speakers)
    turns: list[SpeakerTurn] = []
    local: list[tuple[int, str, list[float] | None]] = []
    notes: list[str] = []
    pipeline = ""
    for index, span in enumerate(spans):
        result = service.diarize(
            Audio(span.speech(pcm), SAMPLE_RATE),
            span_limits,
            _within_span(progress, index, len(spans)),
        )
        release_free_memory()
        notes.extend(n for n in result.notes if n not in notes)
        progress((index + 1) / len(spans))
        if result.diarization is None:
            return DiarizationResult(None, tuple(notes))
        found = result.diarization
        pipeline = found.pipeline
        labels = dict.fromkeys(t.speaker for t in found.turns)
        for label in labels:
            local.append((index, f"{index}:{label}", found.embeddings.get(label)))
        turns += [
            replace(t, speaker=f"{index}:{t.speaker}")
            for t in to_recording(found.turns, span.regions)
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
