"""Who spoke when: run a diarization pipeline on decoded audio, return plain turns."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.domain import Audio, SpeakerLimits

log = logging.getLogger(__name__)


def unit_vector(vector: np.ndarray) -> np.ndarray | None:
    """`vector` scaled to length 1; None when it has no direction (zero, NaN or inf)."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 and np.all(np.isfinite(vector)) else None


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of `matrix` scaled to length 1 (a zero row stays zero)."""
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class SpeakerTurn:
    start_ms: int
    end_ms: int
    speaker: str


@dataclass(frozen=True)
class Diarization:
    turns: tuple[SpeakerTurn, ...]
    """Non-overlapping turns (pyannote's exclusive diarization), in time order."""
    embeddings: dict[str, list[float]] = field(default_factory=dict)
    pipeline: str = ""
    voiceprints: dict[str, list[float]] | None = None
    """256-d voiceprints per speaker (app/diarization/voiceprint.py), when asked for."""
    split: int = 0
    """Speakers added by splitting a speaker whose windows of speech fell into two voices
    (app/diarization/split.py)."""
    joined: int = 0
    """Speakers the linkage kept apart that were joined into a voice pointing the same way
    (app/diarization/clustering.py): a count the diarizer was unsure of."""


_STEP_SHARES = {"segmentation": (0.0, 0.35), "embeddings": (0.35, 0.95)}


def _hook(progress: Callable[[float], None]) -> Callable[..., None]:
    """pyannote's pipeline hook (step, artefact, file=, total=, completed=) -> fractions."""

    def hook(step: str, artefact: Any, *, total: int | None = None, **more: Any) -> None:
        share = _STEP_SHARES.get(step)
        completed = more.get("completed")
        if share is not None and total and completed is not None:
            low, high = share
            progress(low + (high - low) * min(completed / total, 1.0))

    return hook


class Diarizer:
    """Wraps one loaded pyannote pipeline; safe to share between requests. pyannote
    pipelines keep per-call state on the instance (instantiated parameters, inference
    buffers), so each request borrows one of at most `copies` instances (made by `copy`
    from the first, sharing its networks, when more requests than instances come at once);
    with one, requests take turns."""

    def __init__(
        self,
        name: str,
        pipeline: Any,
        copies: int = 1,
        copy: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self._pipeline = pipeline
        self._copy = copy
        self._copies = copies if copy is not None else 1
        self._made = 1
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._free.put(pipeline)
        self._making = threading.Lock()

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        try:
            pipeline = self._free.get_nowait()
        except queue.Empty:
            pipeline = None
            with self._making:
                if self._made < self._copies and self._copy is not None:
                    self._made += 1
                    pipeline = self._copy(self._pipeline)
            if pipeline is None:
                pipeline = self._free.get()
        try:
            yield pipeline
        finally:
            self._free.put(pipeline)

    def diarize(
        self,
        audio: Audio,
        limits: SpeakerLimits,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """`progress` gets the fraction done: segmentation chunks (up to 35 %), embedding
        batches (up to 95 %), through the pipeline's own hook."""
        import torch

        samples = np.asarray(audio.samples, dtype=np.float32)
        file = {
            "waveform": torch.from_numpy(samples)[None],
            "sample_rate": audio.sample_rate,
            "uri": "upload",
        }
        kwargs: dict[str, Any] = {
            k: v
            for k, v in (
                ("num_speakers", limits.num_speakers),
                ("min_speakers", limits.min_speakers),
                ("max_speakers", limits.max_speakers),
            )
            if v is not None
        }
        if progress is not None:
            kwargs["hook"] = _hook(progress)
        with self._borrow() as pipeline:
            output = pipeline(file, **kwargs)
            joined = int(getattr(getattr(pipeline, "clustering", None), "last_joined", 0))
        exclusive = getattr(output, "exclusive_speaker_diarization", output)
        turns = tuple(
            SpeakerTurn(round(seg.start * 1000), round(seg.end * 1000), str(label))
            for seg, _, label in exclusive.itertracks(yield_label=True)
        )
        embeddings: dict[str, list[float]] = {}
        vectors = getattr(output, "speaker_embeddings", None)
        regular = getattr(output, "speaker_diarization", exclusive)
        if vectors is not None:
            for label, vector in zip(regular.labels(), vectors, strict=False):
                if np.all(np.isfinite(vector)):
                    embeddings[str(label)] = [round(float(x), 6) for x in vector]
        return Diarization(
            tuple(sorted(turns, key=lambda t: t.start_ms)), embeddings, self.name, joined=joined
        )

    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        """Stretches of speech (16 kHz) -> one embedding each, by the pipeline's own
        embedding network (offline pipelines only: theirs have `embed_many`)."""
        with self._borrow() as pipeline:
            result: np.ndarray = pipeline._embedding.embed_many(wavs)
        return result

    def embed(self, audio: Audio) -> list[float] | None:
        """The voice in `audio` (a short sample of one speaker), in the space of this
        pipeline's speaker embeddings; None when the sample holds too little speech. An
        embedding that reads only part of a stretch (`longest`, CAM++'s middle 3 s) sees
        the sample piece by piece, and the pieces' directions are averaged, as a speaker's
        centroid averages its chunks."""
        import torch

        samples = np.asarray(audio.samples, dtype=np.float32)
        size = getattr(self._pipeline._embedding, "longest", None) or len(samples)
        pieces = [samples[i : i + size] for i in range(0, len(samples), size)]
        if len(pieces) > 1 and len(pieces[-1]) < size // 2:  # a short tail joins its neighbour
            pieces[-2:] = [np.concatenate(pieces[-2:])]
        vectors = []
        with self._borrow() as pipeline:
            embedding = pipeline._embedding
            for piece in pieces:
                vector = np.asarray(embedding(torch.from_numpy(piece)[None, None]))[0]
                if (unit := unit_vector(vector)) is not None:
                    vectors.append(unit)
        if not vectors:
            return None
        return [float(x) for x in np.mean(vectors, axis=0)]

    def unload(self) -> None:
        self._pipeline = None
        while True:  # the copies go with the original
            try:
                self._free.get_nowait()
            except queue.Empty:
                break
