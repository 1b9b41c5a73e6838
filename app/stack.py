"""Everything that does model work, built and torn down as one: the engine, model cache,
admission, window scheduler, pipeline, transcriber, job store and job worker. The app's
lifespan builds it in simple mode; in ray mode each transcription replica builds its own
(app/serve/deployments.py) and the ingress builds only the front (app/serve/front.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from app import __version__
from app.alignment.aligner import Aligner
from app.allocator import tune_malloc
from app.compute_thread import ComputeThread, own_cuda_stream
from app.config import Settings
from app.diarization.service import DiarizationService
from app.engines.base import Engine
from app.engines.select import build_engine
from app.jobs.service import JobService
from app.jobs.store import JobStore
from app.jobs.webhooks import WebhookSender
from app.jobs.worker import JobWorker
from app.metrics import Metrics
from app.models.cache import ModelCache
from app.models.eviction import IdleEvictor
from app.models.hub import HubClient
from app.models.registry import ModelRegistry
from app.pipeline.cpu_workers import CpuWorkers, auto_processes
from app.pipeline.runner import Pipeline
from app.run.admission import Admission
from app.run.transcriber import Transcriber
from app.scheduler.network_batcher import NetworkBatcher
from app.scheduler.window_scheduler import WindowScheduler, run_here

log = logging.getLogger("app")


@asynccontextmanager
async def model_services(
    settings: Settings,
    state: Any,
    *,
    engine: Engine | None = None,
    worker_id: str | None = None,
    worker_load: Callable[[], dict[str, Any]] | None = None,
    work_root: Path | None = None,
) -> AsyncIterator[None]:
    """Build the services on `state` (app.state, or a replica's namespace) and tear them
    down on exit. `engine` replaces the configured one (tests); `worker_id` and
    `worker_load` name the job worker and report its load (ray replicas); `work_root` is
    where decoded audio of transcriptions in progress goes, this process's alone (emptied
    at start and at exit; default DATA_DIR/work)."""
    state.started_at = time.monotonic()
    tune_malloc()  # before any model or worker thread allocates
    state.serve_mode = settings.serve_mode
    state.upload_dir = None  # uploads of synchronous requests: the system's temp folder
    state.deployment = None  # one process: /health and the metrics describe this one
    state.metrics = metrics = Metrics()
    state.hub = HubClient(settings)
    state.registry = ModelRegistry(settings, state.hub)
    state.engine = engine or build_engine(settings)
    state.model_cache = ModelCache(
        on_change=lambda: metrics.loaded_models.set(len(state.model_cache.loaded("whisper"))),
        max_loaded={"whisper": settings.max_loaded_models},
        on_evict=lambda key: metrics.evictions.labels(model=key).inc(),
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
    # Every request's torch work (alignment, diarization, on the CPU the torch engine too)
    # runs on this one thread (see its module); on a GPU the engine's batches have their
    # own, and the torch thread its own CUDA stream, so that ASR never waits for speakers.
    on_gpu = device == "cuda"
    state.torch_thread = torch_thread = ComputeThread("torch", own_cuda_stream if on_gpu else None)
    beside = on_gpu if settings.diarize_beside_asr is None else settings.diarize_beside_asr
    asr_thread = ComputeThread("asr") if beside else torch_thread
    state.scheduler = scheduler = build_scheduler(settings, state.engine, asr_thread, metrics)
    cpu_workers = CpuWorkers(auto_processes(settings.decode_processes))
    await asyncio.to_thread(cpu_workers.warm_up)
    state.pipeline = Pipeline(
        settings,
        state.engine,
        state.registry,
        state.model_cache,
        metrics,
        aligner=Aligner(settings, state.hub, state.model_cache, device),
        diarization=DiarizationService(
            settings,
            state.hub,
            state.model_cache,
            device,
            NetworkBatcher(
                torch_thread, lambda calls, rows: metrics.diarization_batch_requests.observe(calls)
            ),
        ),
        torch_thread=torch_thread,
        asr_thread=asr_thread,
        scheduler=scheduler,
        cpu_workers=cpu_workers,
        vad_threads=settings.vad_threads if settings.vad_threads >= 0 else None,
    )
    own_folder = work_root is not None  # a replica's, beside other replicas' on its node
    work_root = work_root or settings.data_dir / "work"
    # Decoded audio of transcriptions a stopped server left behind: their jobs start over.
    await asyncio.to_thread(shutil.rmtree, work_root, True)
    if own_folder:  # and what replicas killed on this node left (SIGKILL runs no exit code)
        await asyncio.to_thread(claim_work_folder, work_root)
    state.transcriber = Transcriber(state.pipeline, admission, metrics, state.evictor, work_root)
    state.job_store = store = JobStore(settings.job_database_url)
    await asyncio.to_thread(store.migrate)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    state.job_worker = worker = JobWorker(
        settings,
        store,
        state.transcriber,
        metrics,
        WebhookSender(secret),
        worker_id=worker_id,
        load=worker_load,
    )
    state.jobs = JobService(settings, store, state.pipeline.check, worker)
    state.allowance = state.jobs.allowance
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
        await asyncio.to_thread(state.pipeline.close)
        await asyncio.to_thread(state.model_cache.unload_all)
        torch_thread.close()
        asr_thread.close()
        await asyncio.to_thread(cpu_workers.close)
        if work_root != settings.data_dir / "work":
            await asyncio.to_thread(shutil.rmtree, work_root, True)


_OWNER_FILE = ".owner"


def claim_work_folder(work_root: Path) -> list[Path]:
    """Make `work_root` this process's (a file in it names host and pid) and remove the
    folders beside it whose owner was a process of this host that no longer runs. Returns
    the folders removed."""
    work_root.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    (work_root / _OWNER_FILE).write_text(f"{host} {os.getpid()}")
    removed = []
    for folder in work_root.parent.iterdir():
        owner = folder / _OWNER_FILE
        if folder == work_root or not owner.is_file():
            continue
        owner_host, _, pid = owner.read_text().partition(" ")
        if owner_host == host and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("removed %d work folder(s) of stopped processes", len(removed))
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def build_scheduler(
    settings: Settings, engine: Engine, asr_thread: ComputeThread, metrics: Metrics
) -> WindowScheduler | None:
    size = settings.max_batch_windows
    metrics.batch_capacity.set(size)
    if not size:
        return None

    def on_batch(windows: int) -> None:
        metrics.batch_windows.observe(windows)
        metrics.batch_occupancy.observe(windows / size)

    run_batch = asr_thread.run if engine.runs_torch else run_here
    scheduler = WindowScheduler(size, run_batch, on_batch)
    metrics.scheduler_queued.set_function(lambda: scheduler.queued)
    return scheduler


def stopped_parts(state: Any) -> list[str]:
    """The long-running parts of the model stack that have stopped (a job runner loop, the
    window scheduler's thread): a server with any of them stopped is not healthy."""
    stopped = []
    worker = getattr(state, "job_worker", None)
    if worker is not None and not worker.alive:
        stopped.append("the job worker stopped")
    scheduler = getattr(state, "scheduler", None)
    if scheduler is not None and not scheduler.alive:
        stopped.append("the window scheduler stopped")
    return stopped
