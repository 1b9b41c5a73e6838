"""The ingress's services in ray mode: what the routers need without doing model work. The
transcriber is remote (app/serve/remote.py); jobs are written to the shared store and run by
the replicas' workers; /health, /metrics and /queue-metrics describe the whole deployment
from the workers table, where every replica reports its load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from app import __version__
from app.config import Settings
from app.domain import TranscriptionRequest
from app.engines.select import engine_name
from app.jobs.service import JobService
from app.jobs.store import JobStore
from app.jobs.workers import Worker
from app.metrics import Metrics
from app.models.hub import HubClient
from app.models.registry import ModelRegistry
from app.pipeline.options import check_options
from app.serve.remote import RemoteTranscriber


class DeploymentView:
    """The replicas as they last reported (alive = reported within three lease renewals)."""

    def __init__(self, settings: Settings, store: JobStore, metrics: Metrics) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self.latest: list[Worker] = []

    async def replicas(self) -> list[Worker]:
        seen_after = time.time() - self._settings.job_lease_seconds
        self.latest = await asyncio.to_thread(self._store.workers.seen_since, seen_after)
        return self.latest

    @staticmethod
    def _replica(worker: Worker) -> dict[str, Any]:
        return {
            "id": worker.id,
            **worker.stats,
            "last_report_s": round(time.time() - worker.heartbeat_at, 1),
            "uptime_s": round(time.time() - worker.started_at, 1),
        }

    async def health(self) -> dict[str, Any]:
        replicas = [self._replica(w) for w in await self.replicas()]
        first = replicas[0] if replicas else {}
        loaded = sorted({m for r in replicas for m in r.get("loaded_models", [])})
        return {
            "status": "healthy" if replicas else "no replicas",
            "device": first.get("device"),
            "compute_type": first.get("compute_type"),
            "engine": first.get("engine"),
            "loaded_models": loaded,
            "serve_mode": "ray",
            "replicas": replicas,
        }

    async def queue_metrics(self) -> dict[str, Any]:
        replicas = [self._replica(w) for w in await self.replicas()]

        def total(key: str) -> int:
            return sum(int(r.get(key, 0)) for r in replicas)

        return {
            "queued": total("queued"),
            "running": total("running"),
            "capacity": total("capacity"),
            "completed": total("completed"),
            "rejected": total("rejected"),
            "scheduler": {
                "queued_windows": total("queued_windows"),
                "batches": total("batches"),
                "windows": total("windows"),
            },
            "replicas": [
                {
                    k: r.get(k)
                    for k in ("id", "queued", "running", "capacity", "completed", "queued_windows")
                }
                for r in replicas
            ],
        }

    async def refresh_metrics(self) -> None:
        replicas = await self.replicas()
        metrics = self._metrics
        metrics.replicas.set(len(replicas))
        for measure, gauge in metrics.replica_load.items():
            gauge.clear()
            for worker in replicas:
                gauge.labels(replica=worker.id).set(float(worker.stats.get(measure, 0)))


class RemoteEngine:
    """`state.engine` for the routers (the Asr-Engine header, /info): what the replicas
    report they run, or what these settings would pick before any has reported."""

    def __init__(self, settings: Settings, view: DeploymentView) -> None:
        self._guess = engine_name(settings)
        self._view = view

    def _reported(self, key: str) -> str | None:
        value = self._view.latest[0].stats.get(key) if self._view.latest else None
        return str(value) if value is not None else None

    @property
    def name(self) -> str:
        return self._reported("engine") or self._guess

    @property
    def device(self) -> str:
        return self._reported("device") or "unknown"

    @property
    def compute_type(self) -> str:
        return self._reported("compute_type") or "unknown"


@asynccontextmanager
async def front_services(settings: Settings, state: Any, handle: Any) -> AsyncIterator[None]:
    state.started_at = time.monotonic()
    state.serve_mode = "ray"
    state.metrics = metrics = Metrics()
    state.hub = HubClient(settings)
    state.registry = registry = ModelRegistry(settings, state.hub)
    state.transcriber = RemoteTranscriber(handle, metrics)
    state.job_store = store = JobStore(settings.job_database_url)
    await asyncio.to_thread(store.migrate)
    (settings.data_dir / "uploads").mkdir(parents=True, exist_ok=True)
    # A synchronous request's upload is read by whichever replica Serve picks: shared storage.
    state.upload_dir = settings.data_dir / "uploads" / "requests"

    def check(request: TranscriptionRequest) -> None:
        """The model (ALLOWED_MODELS included) and options, as a replica will check them
        (no download here)."""
        ref = registry.resolve(request.model)
        check_options(ref.name, ref.english_only, request.options)

    state.jobs = JobService(settings, store, check, worker=None)
    state.allowance = state.jobs.allowance
    state.deployment = view = DeploymentView(settings, store, metrics)
    state.engine = RemoteEngine(settings, view)
    await view.replicas()
    metrics.info.info({"version": __version__, "serve_mode": "ray", "engine": state.engine.name})
    try:
        yield
    finally:
        await asyncio.to_thread(store.close)
