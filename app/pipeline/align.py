"""The alignment stage in bounded memory: forced alignment over spans of consecutive
segments, each with only its own audio read from disk. wav2vec2 spans (at most ten minutes)
run one after another here, on the torch thread; PocketSphinx spans (at most two minutes)
go to the CPU worker processes all at once, each worker reading its span's audio itself, so
a long recording is aligned by every worker in parallel."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from app.alignment.aligner import Aligner, AlignmentResult, with_phonetic_times, words_of
from app.alignment.phonetic import AlignedWords, align_words
from app.domain import Segment, Transcript, Word
from app.errors import safe_reason
from app.pipeline.cpu_workers import CpuWorkers
from app.pipeline.pcm import SAMPLE_RATE, PcmFile

log = logging.getLogger(__name__)

SPAN_MS = 600_000
PHONETIC_SPAN_MS = 120_000
"""Small enough that a long recording's spans spread over the workers, and that another
request's decode waits behind one span, not a recording."""
MARGIN_MS = 1_000
"""Audio heard beyond a span's first and last segment (not into the next span's): Whisper's
segment edges can clip a word's first or last sound, and an aligner needs all of it."""


@dataclass(frozen=True)
class _Span:
    part: Transcript
    """The span's segments, on a time line that starts at `start_ms`."""
    start_ms: int
    first: int
    last: int
    """Its audio: samples [first, last) of the recording."""


def _spans(transcript: Transcript, longest_ms: int, duration_ms: int) -> list[_Span]:
    groups: list[list[Segment]] = []
    for segment in transcript.segments:
        if groups and segment.end_ms - groups[-1][0].start_ms <= longest_ms:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    spans: list[_Span] = []
    for k, group in enumerate(groups):
        after_ms = groups[k - 1][-1].end_ms if k else 0
        before_ms = groups[k + 1][0].start_ms if k + 1 < len(groups) else duration_ms
        start_ms = min(group[0].start_ms, max(after_ms, group[0].start_ms - MARGIN_MS))
        end_ms = max(group[-1].end_ms, min(before_ms, group[-1].end_ms + MARGIN_MS))
        part = replace(transcript, segments=tuple(s.shifted(-start_ms) for s in group))
        first, last = start_ms * SAMPLE_RATE // 1000, end_ms * SAMPLE_RATE // 1000 + 1
        spans.append(_Span(part, start_ms, first, last))
    return spans


def align_pcm_span(words: list[Word], pcm: PcmFile, first: int, last: int) -> AlignedWords:
    """PocketSphinx on samples [first, last) of the recording, read here: what a CPU worker
    process runs (only the words and the file's name cross)."""
    return align_words(words, pcm.read_int16(first, last))


def align_in_spans(
    aligner: Aligner, method: str, transcript: Transcript, pcm: PcmFile, workers: CpuWorkers
) -> tuple[Transcript, tuple[str, ...]]:
    """`method`: `Aligner.method(transcript)`, decided once by the caller (which also chose
    the thread this runs on from it)."""
    results: list[AlignmentResult]
    if method == "pocketsphinx":
        spans = _spans(transcript, PHONETIC_SPAN_MS, pcm.duration_ms)
        calls = [(words_of(s.part), pcm, s.first, s.last) for s in spans]
        try:
            aligned = workers.map(align_pcm_span, calls)
        except Exception as exc:  # a worker that died, the model missing: times stay DTW
            note = f"pocketsphinx alignment failed ({safe_reason(exc)}); word times are whisper-dtw"
            log.exception("pocketsphinx alignment failed")
            return transcript, (note,)
        results = [with_phonetic_times(s.part, a) for s, a in zip(spans, aligned, strict=True)]
    else:
        spans = _spans(transcript, SPAN_MS, pcm.duration_ms)
        results = [aligner.align_wav2vec2(s.part, pcm.audio(s.first, s.last)) for s in spans]
    segments: list[Segment] = []
    notes: list[str] = []
    timed_by = transcript.word_timestamps
    for span, result in zip(spans, results, strict=True):
        notes.extend(n for n in result.notes if n not in notes)
        segments.extend(s.shifted(span.start_ms) for s in result.transcript.segments)
        if result.transcript.word_timestamps != transcript.word_timestamps:
            timed_by = result.transcript.word_timestamps
    return replace(transcript, segments=tuple(segments), word_timestamps=timed_by), tuple(notes)
