"""The app factory: every service is built in the lifespan and lives on app.state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.alignment import Aligner
from app.allocator import tune_malloc
from app.api import asr, jobs_routes, openai_routes, system
from app.api.auth import ApiKeyMiddleware, KeyRing
from app.api.docs import install_docs
from app.api.error_handlers import install_error_handlers
from app.api.event_schemas import EVENT_MODELS
from app.api.openapi_spec import with_models, without_validation_errors
from app.api.request_metrics import RequestMetricsMiddleware
from app.api.upload_limit import UploadLimitMiddleware
from app.compute_thread import ComputeThread
from app.config import Settings
from app.diarization.service import DiarizationService
from app.engines.base import Engine
from app.engines.select import build_engine
from app.jobs.service import JobService
from app.jobs.store import JobStore
from app.jobs.webhooks import WebhookSender
from app.jobs.worker import JobWorker
from app.metrics import Metrics
from app.models.hub import HubClient
from app.models.registry import ModelRegistry
from app.pipeline.decode_pool import AudioDecoder, auto_processes
from app.pipeline.runner import Pipeline
from app.scheduler.window_scheduler import WindowScheduler, run_here
from app.services.admission import Admission
from app.services.eviction import IdleEvictor
from app.services.model_cache import ModelCache
from app.services.transcriber import Transcriber

log = logging.getLogger("app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    state = app.state
    state.started_at = time.monotonic()
    tune_malloc()  # before any model or worker thread allocates
    # One uvicorn process serving everything; a multi-machine mode will set its own name.
    state.serve_mode = "simple"
    state.metrics = metrics = Metrics()
    state.hub = HubClient(settings)
    state.registry = ModelRegistry(settings, state.hub)
    state.engine = getattr(state, "engine_override", None) or build_engine(settings)
    state.model_cache = ModelCache(
        on_change=lambda: metrics.loaded_models.set(len(state.model_cache.loaded("whisper")))
    )
    state.admission = admission = Admission(
        settings.concurrent_transcriptions,
        settings.max_queue_size,
        on_reject=metrics.queue_rejected.inc,
    )
    # Requests in progress each hold a worker thread (blocked on their windows, mostly).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=settings.concurrent_transcriptions + 16)
    )
    metrics.active.set_function(lambda: admission.stats.running)
    state.evictor = IdleEvictor(
        state.model_cache,
        metrics,
        settings.model_keep_alive_seconds,
        settings.model_eviction_interval_seconds,
    )
    device = state.engine.device
    # Every request's torch work (alignment, diarization, the torch engine) runs on this
    # one thread (see its module).
    state.torch_thread = torch_thread = ComputeThread("torch")
    state.scheduler = scheduler = build_scheduler(settings, state.engine, torch_thread, metrics)
    decoder = AudioDecoder(auto_processes(settings.decode_processes))
    await asyncio.to_thread(decoder.warm_up)
    state.pipeline = Pipeline(
        settings,
        state.engine,
        state.registry,
        state.model_cache,
        metrics,
        aligner=Aligner(settings, state.hub, state.model_cache, device),
        diarization=DiarizationService(settings, state.hub, state.model_cache, device),
        torch_thread=torch_thread,
        scheduler=scheduler,
        decoder=decoder,
        vad_threads=settings.vad_threads if settings.vad_threads >= 0 else None,
    )
    work_root = settings.data_dir / "work"
    # Decoded audio of transcriptions a stopped server left behind: their jobs start over.
    await asyncio.to_thread(shutil.rmtree, work_root, True)
    state.transcriber = Transcriber(state.pipeline, admission, metrics, state.evictor, work_root)
    state.job_store = store = JobStore(settings.job_database_url)
    await asyncio.to_thread(store.migrate)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    state.job_worker = worker = JobWorker(
        settings, store, state.transcriber, metrics, WebhookSender(secret)
    )
    state.jobs = JobService(settings, store, worker, state.pipeline)
    metrics.info.info(
        {
            "version": __version__,
            "engine": state.engine.name,
            "device": state.engine.device,
            "compute_type": state.engine.compute_type,
            "serve_mode": state.serve_mode,
        }
    )
    default = await asyncio.to_thread(state.registry.default_model)
    log.info(
        "engine=%s device=%s compute_type=%s default_model=%s data_dir=%s",
        state.engine.name,
        state.engine.device,
        state.engine.compute_type,
        default,
        settings.data_dir,
    )
    if settings.preload_model:
        await state.transcriber.preload(settings.preload_model)
    await worker.start()
    sweeper = asyncio.create_task(state.evictor.run()) if state.evictor.enabled else None
    try:
        yield
    finally:
        await worker.stop()
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await asyncio.to_thread(store.close)
        if scheduler is not None:
            await asyncio.to_thread(scheduler.close)
        await asyncio.to_thread(state.model_cache.unload_all)
        torch_thread.close()
        await asyncio.to_thread(decoder.close)


def build_scheduler(
    settings: Settings, engine: Engine, torch_thread: ComputeThread, metrics: Metrics
) -> WindowScheduler | None:
    size = settings.max_batch_windows
    metrics.batch_capacity.set(size)
    if not size:
        return None

    def on_batch(windows: int) -> None:
        metrics.batch_windows.observe(windows)
        metrics.batch_occupancy.observe(windows / size)

    run_batch = torch_thread.run if engine.runs_torch else run_here
    scheduler = WindowScheduler(size, run_batch, on_batch)
    metrics.scheduler_queued.set_function(lambda: scheduler.queued)
    return scheduler


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app. `engine` replaces the configured ASR engine (tests use fakes)."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = FastAPI(
        title="whisperx-service",
        version=__version__,
        description="Self-hosted speech-to-text: whisper-asr-webservice and OpenAI-compatible "
        "APIs on Whisper, offline first.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs with local assets (no CDN offline)
        redoc_url=None,
    )
    app.state.settings = settings

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = with_models(FastAPI.openapi(app), EVENT_MODELS)
            app.openapi_schema = without_validation_errors(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.engine_override = engine
    install_error_handlers(app)
    install_docs(app)
    app.include_router(system.router)
    app.include_router(asr.router)
    app.include_router(openai_routes.router)
    app.include_router(jobs_routes.router)
    app.mount("/web", StaticFiles(directory=system.WEB_DIR), name="web")
    # Last added runs first: metrics see every answer, the 401s and the 413s of the upload
    # limit included; keys are checked before any upload is read.
    app.add_middleware(UploadLimitMiddleware, max_file_bytes=settings.max_file_size_bytes)
    keys = KeyRing.from_settings(settings)
    if keys.enabled:
        log.info(
            "API keys required (%d keys: %s)", len(keys.keys), ", ".join(i for _, i in keys.keys)
        )
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(RequestMetricsMiddleware)
    return app
