"""Diarization as a pipeline stage: choose and cache a pipeline, degrade loudly, never fail
the request (a transcript without speakers beats no transcript)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from app.config import Settings
from app.diarization.batched import copy_pipeline, route_through
from app.diarization.diarizer import Diarization, Diarizer, SpeakerTurn
from app.diarization.pipelines import (
    HUB_PIPELINE,
    OFFLINE_RECIPES,
    OfflineRecipe,
    build_hub,
    build_offline,
    offline_name,
)
from app.diarization.reassign import reassign_turns
from app.diarization.split import split_mixed_speakers
from app.diarization.voice_embedding import VoiceEncoder, load_voice_encoder
from app.diarization.voiceprint import Read, speaker_voiceprints
from app.domain import Audio, SpeakerLimits
from app.errors import safe_reason
from app.models.cache import ModelCache
from app.models.hub import HubClient

if TYPE_CHECKING:  # injected (app/stack.py): the scheduler sits above this package
    from app.scheduler.network_batcher import NetworkBatcher

log = logging.getLogger(__name__)


def _no_report(fraction: float) -> None:
    pass


@dataclass
class _Unloadable:
    """A loaded network as the model cache holds it."""

    model: VoiceEncoder

    def unload(self) -> None:
        del self.model


@dataclass(frozen=True)
class DiarizationResult:
    diarization: Diarization | None
    notes: tuple[str, ...] = ()


class DiarizationService:
    def __init__(
        self,
        settings: Settings,
        hub: HubClient,
        cache: ModelCache,
        device: str,
        batcher: NetworkBatcher | None = None,
    ) -> None:
        """`batcher`: where the offline pipeline's networks run when several requests
        diarize at once (`concurrency` > 1); without one, requests take turns."""
        self._settings = settings
        self._hub = hub
        self._cache = cache
        self._device = "cuda" if device == "cuda" else "cpu"
        self._offline = offline_name(settings.diarization_embedding)
        self._batcher = batcher
        chosen = settings.diarization_batch_requests
        default = 8 if self._device == "cuda" else 1
        self.concurrency = 1 if batcher is None else default if chosen is None else chosen
        """How many requests may diarize at once (each in its caller's thread when more
        than one: the networks' work goes to the batcher's thread)."""

    @contextmanager
    def on_behalf(self, cancelled: Callable[[], bool]) -> Iterator[None]:
        """The calling thread's network calls belong to a request gone when `cancelled()`:
        queued, they are dropped (app/scheduler/network_batcher.py)."""
        if self._batcher is None:
            yield
            return
        with self._batcher.on_behalf(cancelled):
            yield

    @property
    def _recipe(self) -> OfflineRecipe:
        """The offline embedding's measured values, for the settings left unset."""
        return OFFLINE_RECIPES[self._settings.diarization_embedding]

    @property
    def threshold(self) -> float:
        """The offline clustering threshold in force (also links speakers across spans)."""
        chosen = self._settings.diarization_threshold
        return self._recipe.threshold if chosen is None else chosen

    @property
    def join_below(self) -> float:
        """Cosine distance under which two offline speakers are joined into one."""
        chosen = self._settings.diarization_join_below
        return self._recipe.join_below if chosen is None else chosen

    @property
    def split_above(self) -> float:
        """Cosine distance from which one offline speaker's two halves are two speakers."""
        chosen = self._settings.diarization_split_above
        return self._recipe.split_above if chosen is None else chosen

    @property
    def reference_threshold(self) -> float:
        """How close a known speaker's sample must be to a speaker to name it."""
        chosen = self._settings.speaker_reference_threshold
        return self._recipe.reference_threshold if chosen is None else chosen

    def pipeline_name(self) -> str:
        choice = self._settings.diarization_model
        if choice == "offline":
            return self._offline
        if choice != "auto":
            return choice
        if self._settings.hf_token is not None and not self._hub.offline:
            return HUB_PIPELINE
        return self._offline

    def _load(self, name: str) -> Diarizer:
        if name == self._offline:
            graphs = self._settings.diarization_cuda_graphs
            pipeline = build_offline(
                self._device,
                self._settings.diarization_embedding,
                self.threshold,
                self._settings.cache_dir / "diarization",
                join_below=self.join_below,
                cuda_graphs=None if graphs == "off" else graphs,
            )
        else:
            token = self._settings.hf_token
            pipeline = build_hub(name, token.get_secret_value() if token else None, self._device)
            return Diarizer(name, pipeline)
        if self.concurrency == 1 or self._batcher is None:
            return Diarizer(name, pipeline)
        route_through(pipeline, self._batcher)
        return Diarizer(name, pipeline, self.concurrency, copy_pipeline)

    def preload(self) -> None:
        """Load the pipeline requests will use; a failure here is logged, not fatal (the
        first request that needs it retries and reports what went wrong)."""
        name = self.pipeline_name()
        if name == "none":
            return
        try:
            with self._lend(name):
                pass
        except Exception as exc:
            log.warning("could not preload diarization pipeline %s: %s", name, exc)

    def _lend(self, name: str) -> AbstractContextManager[Diarizer]:
        return self._cache.use(f"diarization/{name}", lambda: self._load(name))

    def _run(
        self, name: str, audio: Audio, limits: SpeakerLimits, progress: Callable[[float], None]
    ) -> Diarization:
        with self._lend(name) as diarizer:
            found = diarizer.diarize(audio, limits, progress)
            if name != self._offline:  # hub pipelines' embeddings have no embed_many
                return found
            samples = np.asarray(audio.samples, dtype=np.float32)
            turns, moved = reassign_turns(
                found.turns, found.embeddings, samples, audio.sample_rate, diarizer.embed_many
            )
            log.info("%d of %d turns moved to a nearer speaker", moved, len(turns))
            if limits.num_speakers is not None or self.split_above <= 0:
                return replace(found, turns=turns)
            split = split_mixed_speakers(
                turns,
                samples,
                audio.sample_rate,
                diarizer.embed_many,
                self.split_above,
                most_speakers=limits.max_speakers,
            )
        return replace(
            found,
            turns=split.turns,
            embeddings={**found.embeddings, **split.centroids},
            split=split.splits,
        )

    def _second_looks(self, found: Diarization) -> list[str]:
        """What the join and the split changed in the speaker count, for `notes`."""
        changed = (
            (
                found.split,
                "speakers split: a speaker's speech fell into two distinct voices (cosine "
                f"distance {self.split_above:g} or more) and was taken for two people;"
                " set num_speakers if it is one",
            ),
            (
                found.joined,
                "speakers joined: voices that the clustering kept apart pointed the same way "
                f"(cosine distance under {self.join_below:g}) and were taken for one speaker;"
                " set num_speakers if they are different people",
            ),
        )
        for count, note in changed:
            if count:
                log.info("%s (%d)", note, count)
        return [note for count, note in changed if count]

    def voiceprints(self, turns: Sequence[SpeakerTurn], read: Read) -> dict[str, list[float]]:
        """Blocking. Each speaker's 256-d GE2E voiceprint from their turns of the recording
        (`read(start_ms, end_ms)` gives its samples), whichever pipeline diarized it."""
        with self._cache.use(
            "diarization/voiceprint-ge2e", lambda: _Unloadable(load_voice_encoder(self._device))
        ) as encoder:
            return speaker_voiceprints(encoder.model.embed_many, turns, read)

    def embed_voices(self, pipeline: str, samples: list[Audio]) -> list[list[float] | None]:
        """Blocking. Each sample's voice as `pipeline` (the one that diarized the
        recording) embeds speakers, so that the two can be compared."""
        with self._lend(pipeline) as diarizer:
            return [diarizer.embed(audio) for audio in samples]

    def diarize(
        self, audio: Audio, limits: SpeakerLimits, progress: Callable[[float], None] = _no_report
    ) -> DiarizationResult:
        """Blocking; call from a worker thread. `progress` gets the fraction done as the
        pipeline goes through its chunks; what it raises (a cancelled request) stops the
        diarization and is raised here, never taken for a pipeline failure."""
        name = self.pipeline_name()
        if name == "none":
            return DiarizationResult(
                None, ("diarization skipped: disabled on this server (DIARIZATION_MODEL=none)",)
            )
        notes: list[str] = []
        started = time.perf_counter()
        # A hub pipeline that cannot be had falls back to the offline one; that one failing
        # means no speakers, said in the notes.
        stopped: list[BaseException] = []

        def report(fraction: float) -> None:
            try:
                progress(fraction)
            except BaseException as exc:
                stopped.append(exc)
                raise

        for candidate in dict.fromkeys((name, self._offline)):
            try:
                result = self._run(candidate, audio, limits, report)
                break
            except Exception as exc:
                if stopped:
                    raise stopped[0] from None
                if candidate == self._offline:
                    note = f"diarization skipped: the offline pipeline failed ({safe_reason(exc)})"
                    log.warning(note, exc_info=True)
                    return DiarizationResult(None, (*notes, note))
                note = (
                    f"diarization fell back to the offline pipeline: {candidate} unavailable "
                    f"({safe_reason(exc)})"
                )
                log.warning(note)
                notes.append(note)
        log.info(
            "diarized %.1f s with %s in %.2f s: %d turns",
            audio.duration_ms / 1000,
            result.pipeline,
            time.perf_counter() - started,
            len(result.turns),
        )
        notes += self._second_looks(result)
        return DiarizationResult(result, tuple(notes))
