"""Put speaker labels on words and segments, splitting segments where the speaker changes."""

from __future__ import annotations

from dataclasses import replace

from app.diarization.diarizer import Diarization, SpeakerTurn
from app.domain import Segment, Transcript, Word
from app.intervals import IntervalIndex


class _TurnIndex:
    """Which speaker talks over a span of time: the turn overlapping it the most, else the
    nearest turn (no orphan text). Indexed, so labelling hours of words stays n log n."""

    def __init__(self, turns: tuple[SpeakerTurn, ...]) -> None:
        self._turns = turns
        self._index = IntervalIndex([(t.start_ms, t.end_ms) for t in turns])

    def speaker_at(self, start_ms: int, end_ms: int) -> str | None:
        found = self._index.most_overlapping(start_ms, end_ms)
        if found is None:
            found = self._index.nearest((start_ms + end_ms) / 2)
        return None if found is None else self._turns[found].speaker


def _split(segment: Segment, turns: _TurnIndex) -> list[Segment]:
    if not segment.words:
        return [replace(segment, speaker=turns.speaker_at(segment.start_ms, segment.end_ms))]
    words = [replace(w, speaker=turns.speaker_at(w.start_ms, w.end_ms)) for w in segment.words]
    runs: list[list[Word]] = [[words[0]]]
    for word in words[1:]:
        if word.speaker == runs[-1][-1].speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [replace(segment, words=tuple(words), speaker=words[0].speaker)]
    pieces = []
    for i, run in enumerate(runs):
        pieces.append(
            replace(
                segment,
                start_ms=segment.start_ms if i == 0 else run[0].start_ms,
                end_ms=segment.end_ms if i == len(runs) - 1 else run[-1].end_ms,
                text="".join(w.text for w in run),
                words=tuple(run),
                speaker=run[0].speaker,
                tokens=(),  # the token ids of a part of a segment are not known
            )
        )
    return pieces


def label_speakers(transcript: Transcript, diarization: Diarization) -> Transcript:
    """Label every word and segment; rename speakers SPEAKER_00, 01, ... by first appearance."""
    turns = diarization.turns
    index = _TurnIndex(turns)
    segments = [piece for s in transcript.segments for piece in _split(s, index)]
    order: dict[str, str] = {}
    for label in [s.speaker for s in segments] + [t.speaker for t in turns]:
        if label is not None and label not in order:
            order[label] = f"SPEAKER_{len(order):02d}"

    numbered = tuple(replace(s, id=i) for i, s in enumerate(segments))
    labelled = replace(transcript, segments=numbered, speaker_embeddings=None).renamed(order)

    def keyed(vectors: dict[str, list[float]]) -> dict[str, list[float]]:
        return dict(sorted((order[k], v) for k, v in vectors.items() if k in order))

    prints = diarization.voiceprints
    return replace(
        labelled,
        diarization=diarization.pipeline,
        speaker_embeddings=keyed(diarization.embeddings),
        voiceprints=None if prints is None else keyed(prints),
    )


def drop_words(transcript: Transcript) -> Transcript:
    """Remove word timings the client did not ask for (they were needed for splitting)."""
    return replace(
        transcript,
        segments=tuple(replace(s, words=()) for s in transcript.segments),
        word_timestamps=None,
    )
