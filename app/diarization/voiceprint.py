"""256-d voiceprints of diarized speakers, handed to clients that keep voice profiles.

Speakr keeps a speaker's voice profile only from a vector of exactly 256 floats and compares
profiles across recordings by cosine similarity (the size WhisperX's pyannote embeddings
have). The offline diarizer's own embedding (CAM++) has 192 dimensions, so what
`return_speaker_embeddings=true` hands out is a real 256-d voice embedding of its own: the
GE2E encoder whose weights ship in `resemblyzer`, run over each speaker's own turns. Never a
projection or padding of another space: only vectors of one model are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from app.diarization.diarizer import SpeakerTurn, unit_vector
from app.diarization.voice_embedding import MIN_SAMPLES

MAX_SPEAKER_MS = 90_000
"""Of each speaker, at most this much speech, the longest turns first (bounded work on a
3-hour recording)."""

Embed = Callable[[list[np.ndarray]], np.ndarray]
"""Stretches of 16 kHz speech -> one unit-length embedding each (VoiceEncoder.embed_many)."""
Read = Callable[[int, int], np.ndarray]
"""(start_ms, end_ms) of the recording -> its float32 samples at 16 kHz."""


def pieces_to_embed(turns: Sequence[SpeakerTurn]) -> dict[str, list[tuple[int, int]]]:
    """Per speaker, the (start_ms, end_ms) stretches to hear: their turns, longest first, up
    to MAX_SPEAKER_MS in all (the last one cut short)."""
    by_speaker: dict[str, list[SpeakerTurn]] = {}
    for turn in turns:
        by_speaker.setdefault(turn.speaker, []).append(turn)
    chosen: dict[str, list[tuple[int, int]]] = {}
    for speaker, own in by_speaker.items():
        pieces, total = [], 0
        for turn in sorted(own, key=lambda t: (t.start_ms - t.end_ms, t.start_ms)):
            if total >= MAX_SPEAKER_MS:
                break
            end = min(turn.end_ms, turn.start_ms + MAX_SPEAKER_MS - total)
            pieces.append((turn.start_ms, end))
            total += end - turn.start_ms
        chosen[speaker] = sorted(pieces)
    return chosen


def speaker_voiceprints(
    embed: Embed, turns: Sequence[SpeakerTurn], read: Read
) -> dict[str, list[float]]:
    """label -> 256 floats of unit length: the encoder over the speaker's chosen turns joined
    in time order (its 1.6 s partials averaged over all of them: measured on pyannote's two
    real speakers, a voice across two recordings came out 0.01-0.02 closer to itself than
    when each turn was embedded alone and the results averaged). Speakers with under 0.5 s
    of speech get none."""
    labels, wavs = [], []
    for speaker, pieces in pieces_to_embed(turns).items():
        wav = np.concatenate([read(start, end) for start, end in pieces])
        if len(wav) >= MIN_SAMPLES:
            labels.append(speaker)
            wavs.append(wav)
    if not wavs:
        return {}
    prints = {}
    for label, vector in zip(labels, embed(wavs), strict=True):
        unit = unit_vector(np.asarray(vector, dtype=np.float64))
        if unit is not None:
            prints[label] = [round(float(x), 6) for x in unit]
    return prints
