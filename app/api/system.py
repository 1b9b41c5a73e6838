"""Service endpoints: / (the web page), /info, /health, /metrics, /queue-metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import __version__
from app.api.openapi_spec import detail_errors, text_content
from app.engines.memory import accelerator_memory_bytes
from app.stack import stopped_parts

router = APIRouter(tags=["service"])
_KEYED = detail_errors(401)  # /health and the page are served without a key


WEB_DIR = Path(__file__).resolve().parent.parent / "web"


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The web page (app/web/): upload, progress, transcript, player, downloads."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/info", summary="What this service is", responses=_KEYED)
async def info(request: Request) -> JSONResponse:
    state = request.app.state
    return JSONResponse(
        {
            "name": "whisperx-service",
            "version": __version__,
            "engine": state.engine.name,
            "default_model": state.registry.default_model(),
            "docs": "/docs",
            "endpoints": [
                "/asr",
                "/detect-language",
                "/v1/audio/transcriptions",
                "/v1/audio/translations",
                "/v1/models",
                "/health",
                "/metrics",
                "/queue-metrics",
            ],
        }
    )


@router.get("/health", summary="Liveness and what is loaded")
async def health(request: Request) -> JSONResponse:
    state = request.app.state
    deployment = state.deployment
    if deployment is not None:  # ray mode: every replica, as it last reported
        body = await deployment.health()
        uptime = round(time.monotonic() - state.started_at, 1)
        return JSONResponse(
            {**body, "default_model": state.registry.default_model(), "uptime_s": uptime}
        )
    stopped = stopped_parts(state)  # a dead job runner or scheduler: a 503 a prober sees
    return JSONResponse(
        {
            "status": "unhealthy" if stopped else "healthy",
            "problems": stopped,
            "device": state.engine.device,
            "compute_type": state.engine.compute_type,
            "engine": state.engine.name,
            "default_model": state.registry.default_model(),
            "loaded_models": state.model_cache.loaded("whisper"),
            "loaded": {
                kind: state.model_cache.loaded(kind)
                for kind in ("whisper", "alignment", "diarization")
            },
            "serve_mode": state.serve_mode,
            "uptime_s": round(time.monotonic() - state.started_at, 1),
        },
        status_code=503 if stopped else 200,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": text_content("text/plain")}, **_KEYED},
)
async def metrics(request: Request) -> Response:
    state = request.app.state
    deployment = state.deployment
    if deployment is not None:
        await deployment.refresh_metrics()
    else:
        state.metrics.vram.set(await asyncio.to_thread(accelerator_memory_bytes, state.engine))
    for status, count in (await asyncio.to_thread(state.job_store.counts)).items():
        state.metrics.jobs.labels(status=status).set(count)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/queue-metrics", summary="Admission queue and window scheduler state", responses=_KEYED
)
async def queue_metrics(request: Request) -> JSONResponse:
    deployment = request.app.state.deployment
    if deployment is not None:  # ray mode: the sums over replicas, and each replica
        return JSONResponse(await deployment.queue_metrics())
    admission = request.app.state.admission
    stats = admission.stats
    scheduler = request.app.state.scheduler
    batching = None
    if scheduler is not None:
        done = scheduler.stats
        batching = {
            "max_batch_windows": scheduler.max_batch_windows,
            "queued_windows": scheduler.queued,
            "batches": done.batches,
            "windows": done.windows,
            "mean_batch_windows": round(done.windows / done.batches, 2) if done.batches else 0.0,
            "largest_batch": done.largest_batch,
            "cancelled_windows": done.cancelled,
            "engine_seconds": round(done.engine_s, 3),
            "idle_seconds": round(scheduler.idle_s, 3),
        }
    return JSONResponse(
        {
            "queued": stats.queued,
            "running": stats.running,
            "capacity": admission.capacity,
            "max_queue_size": admission.max_queue,
            "completed": stats.completed,
            "rejected": stats.rejected,
            "abandoned": stats.abandoned,
            "peak_running": stats.peak_running,
            "wait_seconds": {
                "mean": round(stats.total_wait_s / stats.admitted, 3) if stats.admitted else 0.0,
                "max": round(stats.max_wait_s, 3),
            },
            "scheduler": batching,
        }
    )
