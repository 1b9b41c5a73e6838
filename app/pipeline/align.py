"""The alignment stage in bounded memory: forced alignment (wav2vec2 or PocketSphinx) over
spans of at most ten minutes of consecutive segments, each with only its own audio read
from disk."""

from __future__ import annotations

from dataclasses import replace

from app.alignment import Aligner, AlignmentResult, with_phonetic_times, words_of
from app.domain import Segment, Transcript
from app.phonetic_alignment import align_pcm_span
from app.pipeline.cpu_workers import CpuWorkers
from app.pipeline.pcm import SAMPLE_RATE, PcmFile

SPAN_MS = 600_000
MARGIN_MS = 1_000
"""Audio heard beyond a span's first and last segment (not into the next span's): Whisper's
segment edges can clip a word's first or last sound, and an aligner needs all of it."""


def _spans(segments: tuple[Segment, ...]) -> list[list[Segment]]:
    spans: list[list[Segment]] = []
    for segment in segments:
        if spans and segment.end_ms - spans[-1][0].start_ms <= SPAN_MS:
            spans[-1].append(segment)
        else:
            spans.append([segment])
    return spans


def align_in_spans(
    aligner: Aligner, transcript: Transcript, pcm: PcmFile, workers: CpuWorkers
) -> tuple[Transcript, tuple[str, ...]]:
    """PocketSphinx spans run in `workers` (they read their own audio from the PCM file);
    wav2vec2 spans here, with their audio read here."""
    segments: list[Segment] = []
    notes: list[str] = []
    method = transcript.word_timestamps
    spans = _spans(transcript.segments)
    for k, span in enumerate(spans):
        after_ms = spans[k - 1][-1].end_ms if k else 0
        before_ms = spans[k + 1][0].start_ms if k + 1 < len(spans) else pcm.duration_ms
        start_ms = min(span[0].start_ms, max(after_ms, span[0].start_ms - MARGIN_MS))
        end_ms = max(span[-1].end_ms, min(before_ms, span[-1].end_ms + MARGIN_MS))
        first, last = start_ms * SAMPLE_RATE // 1000, end_ms * SAMPLE_RATE // 1000 + 1
        part = replace(transcript, segments=tuple(s.shifted(-start_ms) for s in span))
        result: AlignmentResult
        if aligner.method(part) == "pocketsphinx":
            aligned = workers.run(align_pcm_span, words_of(part), pcm.path, first, last)
            result = with_phonetic_times(part, aligned)
        else:
            result = aligner.align(part, pcm.audio(first, last))
        notes.extend(n for n in result.notes if n not in notes)
        segments.extend(s.shifted(start_ms) for s in result.transcript.segments)
        if result.transcript.word_timestamps != transcript.word_timestamps:
            method = result.transcript.word_timestamps
    return replace(transcript, segments=tuple(segments), word_timestamps=method), tuple(notes)
