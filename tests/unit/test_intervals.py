"""The interval index agrees with a linear scan, and labelling/alignment of a 3-hour meeting
stays n log n (these would run for minutes if either went quadratic again)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from app.alignment.aligner import apply_alignment
from app.diarization.assign import label_speakers
from app.diarization.diarizer import Diarization, SpeakerTurn
from app.domain import Segment, Transcript, Word
from app.intervals import IntervalIndex

THREE_HOURS_MS = 3 * 3600 * 1000
# About ten times the linear cost (0.2-0.3 s here); the quadratic scans took 10-30 s.
BOUND_S = 3.0


def finishes_within[T](seconds: float, work: Callable[[], T]) -> T:
    """Run `work` in a thread; fail (without waiting for it) if it is not done in time."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not finish within {seconds} s: quadratic again?"
    return result[0]


def brute_overlap(intervals: list[tuple[int, int]], start: int, end: int) -> int | None:
    best, best_overlap = None, 0
    for i, (s, e) in enumerate(intervals):
        overlap = min(end, e) - max(start, s)
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best


def brute_nearest(intervals: list[tuple[int, int]], point: float) -> int | None:
    if not intervals:
        return None
    return min(
        range(len(intervals)),
        key=lambda i: min(abs(point - intervals[i][0]), abs(point - intervals[i][1])),
    )


def brute_containing(intervals: list[tuple[int, int]], point: float) -> int | None:
    return next((i for i, (s, e) in enumerate(intervals) if s <= point <= e), None)


def test_index_answers_like_a_linear_scan_on_random_overlapping_intervals() -> None:
    rng = random.Random(7)
    for _ in range(200):
        intervals = []
        for _ in range(rng.randint(0, 30)):
            start = rng.randint(0, 1000)
            intervals.append((start, start + rng.randint(0, 200)))
        index = IntervalIndex(intervals)
        for _ in range(30):
            a = rng.randint(-100, 1300)
            b = a + rng.randint(0, 150)
            point = rng.choice([a, a + 0.5])
            assert index.most_overlapping(a, b) == brute_overlap(intervals, a, b)
            assert index.nearest(point) == brute_nearest(intervals, point)
            assert index.containing(point) == brute_containing(intervals, point)


def three_hour_meeting() -> tuple[Transcript, tuple[SpeakerTurn, ...]]:
    """~27,000 words in 10-word segments and ~3,600 alternating turns of ~3 s."""
    rng = random.Random(3)
    turns: list[SpeakerTurn] = []
    at = 0
    while at < THREE_HOURS_MS:
        length = rng.randint(1_000, 5_000)
        turns.append(SpeakerTurn(at, at + length, f"spk_{len(turns) % 3}"))
        at += length + rng.randint(0, 400)
    words: list[Word] = []
    at = 0
    while at < THREE_HOURS_MS:
        words.append(Word(at, at + 300, f" w{len(words)}", 0.9))
        at += 400
    segments = tuple(
        Segment(i, chunk[0].start_ms, chunk[-1].end_ms, "".join(w.text for w in chunk), chunk)
        for i, chunk in enumerate(tuple(words[k : k + 10]) for k in range(0, len(words), 10))
    )
    transcript = Transcript(segments, "en", 1.0, THREE_HOURS_MS, word_timestamps="whisper-dtw")
    return transcript, tuple(turns)


def test_labelling_three_hours_of_words_is_not_quadratic() -> None:
    transcript, turns = three_hour_meeting()
    labelled = finishes_within(BOUND_S, lambda: label_speakers(transcript, Diarization(turns)))
    assert len(labelled.words) == len(transcript.words) > 25_000
    assert all(w.speaker is not None for w in labelled.words)
    assert len(labelled.segments) > len(transcript.segments)  # split at speaker changes


def test_aligning_three_hours_of_words_is_not_quadratic() -> None:
    transcript, _ = three_hour_meeting()
    aligned = [
        {
            "words": [
                # every tenth word unaligned (numerals), like whisperX's output
                {"word": w.text.strip()}
                if w.start_ms % 4_000 == 0
                else {"word": w.text.strip(), "start": w.start_ms / 1000, "end": w.end_ms / 1000}
                for w in s.words
            ]
        }
        for s in transcript.segments
    ]
    out = finishes_within(BOUND_S, lambda: apply_alignment(transcript, aligned))
    assert out.word_timestamps == "wav2vec2"
    assert [len(s.words) for s in out.segments] == [len(s.words) for s in transcript.segments]
