"""The Ray Serve application: an ingress deployment (the same FastAPI app, no model work)
and a transcription deployment whose replicas each build the whole model stack once
(app/stack.py: engine, window scheduler, alignment, diarization, job worker).

- Synchronous requests go ingress -> handle -> a replica (Serve picks the less loaded of two);
  each replica's window scheduler batches the windows of every request it holds.
- Jobs: every replica's job worker claims jobs from the shared store (PostgreSQL across
  machines) under a lease, so a job runs once and a killed replica's job is run again
  elsewhere (app/jobs/worker.py).
- Health: Serve calls check_health; a replica whose job worker or scheduler died is
  replaced. Load: each replica reports it to the store's workers table (what /health,
  /metrics and /queue-metrics show for the whole deployment) and to Serve's autoscaler
  (queued windows; app/serve/autoscaling.py).

Settings come from each replica's environment and the checkout's .env (the same variables as
simple mode)."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# CTranslate2 before torch, as in app/main.py (OpenMP runtimes; see there).
import ctranslate2  # noqa: F401
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from app.config import Settings
from app.domain import LanguageGuess, Transcript, TranscriptionRequest
from app.run.transcriber import text_as_decoded
from app.stack import model_services, stopped_parts

APP_NAME = "whisperx"
CHECKOUT = Path(__file__).resolve().parents[2]


def replica_settings() -> Settings:
    """The environment, then this checkout's .env (as entrypoint.sh reads it in simple mode):
    a replica's working directory is Ray's, not the checkout."""
    return Settings(_env_file=CHECKOUT / ".env")


class Transcription:
    """One transcription replica."""

    async def __init__(self) -> None:  # type: ignore[misc]  # Serve awaits an async constructor
        self.settings = settings = replica_settings()
        context = serve.get_replica_context()
        self.replica = context.replica_id.unique_id
        self.worker_id = f"{context.deployment}-{self.replica}"
        self.state = SimpleNamespace(settings=settings)
        # Decoded audio stays on this node's disk, in this replica's own folder: DATA_DIR
        # is shared by every replica (a start empties its work folder).
        work = Path(tempfile.gettempdir()) / "whisperx-work" / self.worker_id
        self._services: AbstractAsyncContextManager[None] = model_services(
            settings, self.state, worker_id=self.worker_id, worker_load=self.load, work_root=work
        )
        await self._services.__aenter__()
        if settings.preload_model:
            await self.state.transcriber.preload(settings.preload_model)

    # --- the work ------------------------------------------------------------------------
    async def transcribe(
        self, path: str, request: TranscriptionRequest, queue_limit: bool = True
    ) -> Transcript:
        result: Transcript = await self.state.transcriber.transcribe(
            Path(path), request, queue_limit=queue_limit
        )
        return result

    async def transcribe_stream(
        self, path: str, request: TranscriptionRequest
    ) -> AsyncIterator[tuple[str, Any]]:
        """("text", segments) as each window is decoded, then ("done", transcript)."""
        transcriber = self.state.transcriber
        async for item in text_as_decoded(
            lambda on_text: transcriber.transcribe(Path(path), request, on_text=on_text)
        ):
            yield item

    async def detect_language(self, path: str, model: str | None, encoded: bool) -> LanguageGuess:
        guess: LanguageGuess = await self.state.transcriber.detect_language(
            Path(path), model=model, encoded=encoded
        )
        return guess

    # --- what the deployment reports ------------------------------------------------------
    def load(self) -> dict[str, Any]:
        """This replica's identity and load (the workers table; /health in ray mode)."""
        state = self.state
        stats = state.admission.stats
        scheduler = state.scheduler
        return {
            "replica": self.replica,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "engine": state.engine.name,
            "device": state.engine.device,
            "compute_type": state.engine.compute_type,
            "loaded_models": state.model_cache.loaded("whisper"),
            "running": stats.running,
            "queued": stats.queued,
            "completed": stats.completed,
            "rejected": stats.rejected,
            "capacity": state.admission.capacity,
            "queued_windows": scheduler.queued if scheduler is not None else 0,
            "batches": scheduler.stats.batches if scheduler is not None else 0,
            "windows": scheduler.stats.windows if scheduler is not None else 0,
        }

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's autoscaler reads these (app/serve/autoscaling.py)."""
        stats = self.state.admission.stats
        scheduler = self.state.scheduler
        windows = scheduler.queued if scheduler is not None else 0
        return {"queued_windows": float(windows), "requests": float(stats.running + stats.queued)}

    def check_health(self) -> None:
        """Serve replaces a replica whose job worker or window scheduler stopped."""
        stopped = stopped_parts(self.state)
        if stopped:
            raise RuntimeError("; ".join(stopped))

    async def __del__(self) -> None:
        await self._services.__aexit__(None, None, None)


@serve.ingress()
class Ingress:
    """The FastAPI app (create_app) with the transcription deployment as its engine."""

    def __init__(self, transcription: DeploymentHandle) -> None:
        self._transcription = transcription

    def __serve_build_asgi_app__(self) -> Any:
        from app.factory import create_app

        return create_app(replica_settings(), remote=self._transcription)


def transcription_options(settings: Settings) -> dict[str, Any]:
    """The transcription deployment's Serve options, from the settings."""
    options: dict[str, Any] = {
        "ray_actor_options": {
            "num_cpus": settings.ray_cpus_per_replica,
            "num_gpus": settings.ray_gpus_per_replica,
        },
        # Serve holds back what a replica's own admission would queue anyway.
        "max_ongoing_requests": settings.concurrent_transcriptions + settings.max_queue_size,
        "health_check_period_s": 10,
        "health_check_timeout_s": 60,
        "graceful_shutdown_timeout_s": 30,
    }
    if settings.ray_max_replicas > settings.ray_replicas:
        options["autoscaling_config"] = {
            "min_replicas": settings.ray_replicas,
            "max_replicas": settings.ray_max_replicas,
            "policy": {
                "policy_function": "app.serve.autoscaling:QueuedWindowsPolicy",
                "policy_kwargs": {"target": settings.ray_target_queued_windows},
            },
        }
    else:
        options["num_replicas"] = settings.ray_replicas
    return options


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The application from the settings; `args` (a serve config file's `args:`) override
    the transcription deployment's options."""
    options = {**transcription_options(replica_settings()), **(args or {})}
    transcription = serve.deployment(name="Transcription", **options)(Transcription)
    ingress = serve.deployment(name="Ingress", num_replicas=1, ray_actor_options={"num_cpus": 0})(
        Ingress
    )
    return ingress.bind(transcription.bind())
