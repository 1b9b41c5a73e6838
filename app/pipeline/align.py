"""The alignment stage in bounded memory: wav2vec2 forced alignment over spans of at most
ten minutes of consecutive segments, each with only its own audio read from disk."""

from __future__ import annotations

from dataclasses import replace

from app.alignment import Aligner
from app.domain import Segment, Transcript
from app.pipeline.pcm import SAMPLE_RATE, PcmFile

SPAN_MS = 600_000


def _spans(segments: tuple[Segment, ...]) -> list[list[Segment]]:
    spans: list[list[Segment]] = []
    for segment in segments:
        if spans and segment.end_ms - spans[-1][0].start_ms <= SPAN_MS:
            spans[-1].append(segment)
        else:
            spans.append([segment])
    return spans


def align_in_spans(
    aligner: Aligner, transcript: Transcript, pcm: PcmFile
) -> tuple[Transcript, tuple[str, ...]]:
    segments: list[Segment] = []
    notes: list[str] = []
    method = transcript.word_timestamps
    for span in _spans(transcript.segments):
        start_ms, end_ms = span[0].start_ms, span[-1].end_ms
        audio = pcm.audio(start_ms * SAMPLE_RATE // 1000, end_ms * SAMPLE_RATE // 1000 + 1)
        part = replace(transcript, segments=tuple(s.shifted(-start_ms) for s in span))
        result = aligner.align(part, audio)
        notes.extend(n for n in result.notes if n not in notes)
        segments.extend(s.shifted(start_ms) for s in result.transcript.segments)
        method = result.transcript.word_timestamps if not result.notes else method
    return replace(transcript, segments=tuple(segments), word_timestamps=method), tuple(notes)
