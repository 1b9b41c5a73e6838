"""Names for diarized speakers from short voice samples (OpenAI's known_speaker_references).

Each name's samples are embedded by the same network that diarized the recording; names and
speakers are paired one to one by the smallest total cosine distance, and a pair farther
apart than the threshold is dropped: a sample of someone who is not in the recording must
not name the speaker who merely sounds most like them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from app.diarization.diarizer import unit_vector
from app.diarization.service import DiarizationService
from app.domain import KnownSpeaker, Transcript
from app.errors import safe_reason

log = logging.getLogger(__name__)


Voices = tuple[tuple[str, list[float]], ...]


def embed_known(
    service: DiarizationService, pipeline: str, known: Sequence[KnownSpeaker]
) -> tuple[Voices, tuple[str, ...]]:
    """Blocking. Each sample's voice, embedded by `pipeline` (the one that labelled the
    recording); a sample that cannot be used is said in the notes, never fatal."""
    try:
        vectors = service.embed_voices(pipeline, [k.sample for k in known])
    except Exception as exc:
        note = (
            f"known_speaker_references not used: embedding the samples failed ({safe_reason(exc)})"
        )
        log.warning(note, exc_info=True)
        return (), (note,)
    voices = tuple((k.name, v) for k, v in zip(known, vectors, strict=True) if v is not None)
    notes = tuple(
        f"known_speaker_references: the sample for '{k.name}' holds too little speech"
        for k, v in zip(known, vectors, strict=True)
        if v is None
    )
    return voices, notes


def name_speakers(
    speakers: Mapping[str, Sequence[float]],
    references: Sequence[tuple[str, Sequence[float]]],
    max_distance: float,
) -> dict[str, str]:
    """`speakers`: label -> voice (centroid); `references`: (name, voice of one sample); a
    name given several samples is matched on their mean direction. Returns label -> name
    for the speakers whose voice lies within `max_distance` (cosine) of a name's."""
    by_name: dict[str, list[np.ndarray]] = {}
    for name, vector in references:
        unit = unit_vector(np.asarray(vector, dtype=np.float64))
        if unit is not None:
            by_name.setdefault(name, []).append(unit)
    voices = {
        label: unit
        for label, vector in speakers.items()
        if (unit := unit_vector(np.asarray(vector, dtype=np.float64))) is not None
    }
    means = {
        name: unit
        for name, units in by_name.items()
        if (unit := unit_vector(np.mean(units, axis=0))) is not None
    }
    if not means or not voices:
        return {}
    names, labels = list(means), list(voices)
    distances = 1.0 - np.stack(list(means.values())) @ np.stack(list(voices.values())).T
    rows, columns = linear_sum_assignment(distances)
    return {
        labels[c]: names[r]
        for r, c in zip(rows, columns, strict=True)
        if distances[r, c] <= max_distance
    }


def name_known_speakers(
    transcript: Transcript, voices: Voices, max_distance: float
) -> tuple[Transcript, tuple[str, ...]]:
    """The transcript with `speaker_names` from the known voices, and notes on why not."""
    if not voices:
        return transcript, ()
    if not transcript.speaker_embeddings:
        note = (
            "known_speaker_references not used: the diarization pipeline gave no speaker "
            "embeddings to compare them with"
        )
        return transcript, (note,)
    names = name_speakers(transcript.speaker_embeddings, voices, max_distance)
    return replace(transcript, speaker_names=names), ()
