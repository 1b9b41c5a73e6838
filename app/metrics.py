"""Prometheus metrics, on a registry owned by one app (tests build many apps)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_AUDIO_BUCKETS = (1, 5, 15, 30, 60, 300, 600, 1800, 3600, 7200, 14400)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512)
_SIZE_BUCKETS = (0.1, 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "whisperx_requests",
            "Requests by endpoint and outcome",
            ["endpoint", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "whisperx_request_duration_seconds",
            "End-to-end handler time",
            ["endpoint"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "whisperx_active_transcriptions", "Transcriptions in flight", registry=r
        )
        self.loaded_models = Gauge("whisperx_loaded_models", "Whisper models in memory", registry=r)
        self.evictions = Counter(
            "whisperx_model_evictions", "Models unloaded when idle", ["model"], registry=r
        )
        self.audio_duration = Histogram(
            "whisperx_audio_duration_seconds",
            "Duration of submitted audio",
            buckets=_AUDIO_BUCKETS,
            registry=r,
        )
        self.audio_size = Histogram(
            "whisperx_audio_size_megabytes",
            "Size of submitted files",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.vram = Gauge(
            "whisperx_vram_allocated_bytes",
            "CUDA allocated memory, MLX active memory, or 0",
            registry=r,
        )
        self.queue_wait = Histogram(
            "whisperx_queue_wait_seconds",
            "Time a request waited for a transcription slot",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.queue_rejected = Counter(
            "whisperx_queue_rejected",
            "Requests refused with 503 because the queue was full",
            registry=r,
        )
        self.stage = Histogram(
            "whisperx_stage_duration_seconds",
            "Time per pipeline stage (decode, vad+asr, align, diarize)",
            ["stage"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.replica_retries = Counter(
            "whisperx_replica_retries",
            "Ray mode: calls made again on another replica because theirs was lost",
            ["call"],
            registry=r,
        )
        self.api_key_requests = Counter(
            "whisperx_api_key_requests",
            "Authenticated requests, by key id (a digest of the key, never the key)",
            ["key_id"],
            registry=r,
        )
        self.jobs = Gauge("whisperx_jobs", "Jobs in the store by status", ["status"], registry=r)
        self.job_duration = Histogram(
            "whisperx_job_duration_seconds",
            "Time from a job's start to its end (completed or failed)",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.batch_windows = Histogram(
            "whisperx_batch_windows",
            "Speech windows per engine call of the window scheduler",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.diarization_batch_requests = Histogram(
            "whisperx_diarization_batch_requests",
            "Requests whose diarization network calls ran in one batch",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.batch_occupancy = Histogram(
            "whisperx_batch_occupancy_ratio",
            "Windows per engine call over MAX_BATCH_WINDOWS (1 = full batches)",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=r,
        )
        self.batch_capacity = Gauge(
            "whisperx_batch_capacity_windows",
            "MAX_BATCH_WINDOWS (0 = the window scheduler is off)",
            registry=r,
        )
        self.scheduler_queued = Gauge(
            "whisperx_scheduler_queued_windows", "Windows waiting for a batch", registry=r
        )
        self.info = Info("whisperx_service", "Static facts about this service", registry=r)
        # SERVE_MODE=ray: the whole deployment, as its replicas last reported (the ingress
        # sets these from the store's workers table on each scrape).
        self.replicas = Gauge(
            "whisperx_replicas", "Transcription replicas that reported lately", registry=r
        )
        self.replica_load = {
            measure: Gauge(
                f"whisperx_replica_{measure}", f"A replica's {what}", ["replica"], registry=r
            )
            for measure, what in (
                ("running", "transcriptions holding a permit"),
                ("queued", "transcriptions waiting for a permit"),
                ("queued_windows", "speech windows waiting for a batch"),
                ("completed", "transcriptions finished since it started"),
                ("jobs_done", "jobs completed since it started"),
            )
        }

    def timed[T](self, stage: str, work: Callable[[], T]) -> T:
        """`work()`, its seconds observed under `stage`, whether it returns or raises."""
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.stage.labels(stage=stage).observe(time.perf_counter() - started)
