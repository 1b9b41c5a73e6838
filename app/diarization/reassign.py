"""A second look at every turn: give it to the speaker whose voice it is closest to.

pyannote's pipeline names a turn by majority over the 10 s chunks that saw it, and each
chunk embeds its local speakers whole. When the segmentation model puts two voices into one
local speaker of a chunk (measured on the real-voice mixes of the development set: a man's
1.8 s turn between two turns of a woman, merged with her in three of the four chunks that
saw it), the chunks that merged outvote the one that did not, and the short turn takes its
neighbour's name. Embedding each turn on its own and moving it to the nearest speaker
centroid mends that (bench/RESULTS.md, "Turns reassigned": DER on the real-voice files
halved, no file worse, every speaker count still right).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from app.diarization.diarizer import SpeakerTurn, unit_vector

SHORTEST_TURN_S = 0.5
"""Turns shorter than this keep their label: too little speech for a trustworthy embedding
(the pipeline's embeddings leave out under 0.5 s as well)."""

EmbedMany = Callable[[list[np.ndarray]], np.ndarray]
"""Stretches of speech -> one embedding per stretch, (n, dimension)."""


def reassign_turns(
    turns: Sequence[SpeakerTurn],
    centroids: Mapping[str, Sequence[float]],
    samples: np.ndarray,
    sample_rate: int,
    embed_many: EmbedMany,
    shortest_s: float = SHORTEST_TURN_S,
) -> tuple[tuple[SpeakerTurn, ...], int]:
    """(turns, how many changed speaker). Each turn of at least `shortest_s` goes to the
    speaker whose centroid is nearest (cosine) to the turn's own embedding. Turns of a
    speaker without a centroid, and every turn when there are fewer than two centroids,
    stay as they are."""
    units = {k: u for k, v in centroids.items() if (u := unit_vector(np.asarray(v))) is not None}
    shortest = int(shortest_s * sample_rate)
    speech = {
        i: stretch
        for i, t in enumerate(turns)
        if t.speaker in units and len(stretch := _speech(samples, t, sample_rate)) >= shortest
    }
    if len(units) < 2 or not speech:
        return tuple(turns), 0
    labels = list(units)
    matrix = np.stack([units[k] for k in labels])
    vectors = embed_many(list(speech.values()))
    out, moved = list(turns), 0
    for i, vector in zip(speech, vectors, strict=True):
        unit = unit_vector(np.asarray(vector, dtype=np.float64))
        if unit is None:
            continue
        nearest = labels[int(np.argmax(matrix @ unit))]
        if nearest != turns[i].speaker:
            out[i] = replace(turns[i], speaker=nearest)
            moved += 1
    return tuple(out), moved


def _speech(samples: np.ndarray, turn: SpeakerTurn, sample_rate: int) -> np.ndarray:
    return samples[turn.start_ms * sample_rate // 1000 : turn.end_ms * sample_rate // 1000]
