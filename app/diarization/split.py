"""A second look at every speaker: is it two people?

The segmentation model hears two similar voices in one 10 s chunk as one local speaker, so
the chunk embeddings the clustering sees blend them and the clustering keeps them as one
speaker; their turns then run from one voice into the other. Short windows of a speaker's
speech, each embedded on its own, hear one voice at a time: on the development set's real
voices two women came apart by 0.25-0.27 (cosine distance between the two halves' mean
directions) while one woman in two languages stayed within 0.19 and every voice the
clustering had right within 0.13 (bench/RESULTS.md, "Two voices, one speaker"). So each
speaker's windows are split in two by spherical 2-means, the split is kept when the halves
lie at least `split_above` apart and each has enough windows to be a voice, and the
speaker's turns are cut where its windows change side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from app.diarization.diarizer import SpeakerTurn, unit_rows

_ROUNDS = 20

EmbedMany = Callable[[list[np.ndarray]], np.ndarray]


def two_means(units: np.ndarray) -> tuple[np.ndarray, float]:
    """(side of each unit vector, 0 or 1; cosine distance between the two sides' mean
    directions): spherical 2-means seeded by the two vectors farthest apart."""
    similarity = units @ units.T
    i, j = np.unravel_index(int(np.argmin(similarity)), similarity.shape)
    centres = np.stack([units[i], units[j]])
    side = np.full(len(units), -1)
    for _ in range(_ROUNDS):
        new = np.argmax(units @ centres.T, axis=1)
        if (new == side).all():
            break
        side = new
        if side.min() == side.max():
            return side, 0.0
        centres = unit_rows(np.stack([units[side == k].sum(axis=0) for k in (0, 1)]))
    return side, float(1.0 - centres[0] @ centres[1])


def split_labels(
    embeddings: np.ndarray,
    labels: Sequence[str],
    split_above: float,
    fewest: int,
    most_speakers: int | None = None,
    others: frozenset[str] = frozenset(),
) -> list[str]:
    """`labels` (one speaker per embedding) with each speaker whose embeddings fall into two
    groups at least `split_above` apart, each of at least `fewest`, given a new label for
    the group that does not hold its first embedding (the label keeps the voice heard
    first); the widest split first, each half looked at again, until
    `most_speakers` (counting `others`: speakers with no embedding here, whose labels new
    ones never take)."""
    units = unit_rows(np.asarray(embeddings, dtype=np.float64))
    out = np.array(list(labels), dtype=object)
    settled: set[str] = set()
    while most_speakers is None or len(set(out.tolist()) | others) < most_speakers:
        best: tuple[float, np.ndarray] | None = None
        for speaker in sorted(set(out.tolist()) - settled):
            mine = np.flatnonzero(out == speaker)
            side, apart = (
                (np.zeros(0, int), 0.0) if len(mine) < 2 * fewest else two_means(units[mine])
            )
            sizes = [int((side == k).sum()) for k in (0, 1)]
            if apart < split_above or min(sizes) < fewest:
                settled.add(speaker)
            elif best is None or apart > best[0]:
                best = (apart, mine[side != side[0]])
        if best is None:
            break
        out[best[1]] = new_label(set(out.tolist()) | others)
    return [str(x) for x in out]


def new_label(taken: set[str]) -> str:
    n = len(taken)
    while f"SPEAKER_{n:02d}" in taken:
        n += 1
    return f"SPEAKER_{n:02d}"


@dataclass(frozen=True)
class Resegmented:
    turns: tuple[SpeakerTurn, ...]
    centroids: dict[str, list[float]]
    """The mean window embedding of each speaker that a split made or changed."""
    splits: int


def split_mixed_speakers(
    turns: Sequence[SpeakerTurn],
    samples: np.ndarray,
    sample_rate: int,
    embed_many: EmbedMany,
    split_above: float,
    window_s: float = 2.0,
    fewest_windows: int = 5,
    most_speakers: int | None = None,
) -> Resegmented:
    """Turns with every speaker that is two voices split (see the module's docstring):
    windows of `window_s` back to back inside each turn; a split speaker's turns are cut
    where consecutive windows change side, a turn shorter than a window goes with its
    speaker's window nearest in time."""
    size = int(window_s * sample_rate)
    windows: list[tuple[int, int, int]] = []  # (turn index, start, end) in samples
    for i, turn in enumerate(turns):
        start = turn.start_ms * sample_rate // 1000
        end = turn.end_ms * sample_rate // 1000
        windows += [(i, s, s + size) for s in range(start, end - size + 1, size)]
    if len(windows) < 2 * fewest_windows:
        return Resegmented(tuple(turns), {}, 0)
    vectors = np.asarray(embed_many([samples[s:e] for _, s, e in windows]), dtype=np.float64)
    good = np.all(np.isfinite(vectors), axis=1)
    windows = [w for w, ok in zip(windows, good, strict=True) if ok]
    vectors = vectors[good]
    if len(windows) < 2 * fewest_windows:
        return Resegmented(tuple(turns), {}, 0)
    before = [turns[i].speaker for i, _, _ in windows]
    others = frozenset(t.speaker for t in turns) - set(before)
    after = split_labels(vectors, before, split_above, fewest_windows, most_speakers, others)
    changed = {b for b, a in zip(before, after, strict=True) if a != b}
    if not changed:
        return Resegmented(tuple(turns), {}, 0)
    out: list[SpeakerTurn] = []
    for i, turn in enumerate(turns):
        if turn.speaker not in changed:
            out.append(turn)
            continue
        mine = [(s, a) for (j, s, _), a in zip(windows, after, strict=True) if j == i]
        if not mine:  # shorter than a window: the side of its speaker's nearest window
            middle = (turn.start_ms + turn.end_ms) * sample_rate // 2000
            own = [
                (abs(s - middle), a)
                for (j, s, _), a, b in zip(windows, after, before, strict=True)
                if b == turn.speaker
            ]
            out.append(replace(turn, speaker=min(own)[1]))
            continue
        out += _cut(turn, mine, sample_rate)
    speakers = {a for b, a in zip(before, after, strict=True) if b in changed}
    centroids = {
        k: [round(float(x), 6) for x in vectors[[a == k for a in after]].mean(axis=0)]
        for k in sorted(speakers)
    }
    return Resegmented(tuple(_joined(out)), centroids, len(set(after)) - len(set(before)))


def _cut(turn: SpeakerTurn, mine: list[tuple[int, str]], rate: int) -> list[SpeakerTurn]:
    """`turn` cut where its back-to-back windows (start sample, side) change side; what
    follows the last whole window goes with it."""
    pieces, start_ms, label = [], turn.start_ms, mine[0][1]
    for (_, a), (s, b) in pairwise(mine):
        if b != a:
            cut_ms = s * 1000 // rate
            pieces.append(replace(turn, start_ms=start_ms, end_ms=cut_ms, speaker=label))
            start_ms, label = cut_ms, b
    pieces.append(replace(turn, start_ms=start_ms, speaker=label))
    return pieces


def _joined(turns: list[SpeakerTurn]) -> list[SpeakerTurn]:
    """Consecutive pieces of one turn given the same speaker again are one turn."""
    out: list[SpeakerTurn] = []
    for t in turns:
        if out and out[-1].speaker == t.speaker and out[-1].end_ms == t.start_ms:
            out[-1] = replace(out[-1], end_ms=t.end_ms)
        else:
            out.append(t)
    return out
