"""Runs queued jobs through the same Transcriber as the synchronous endpoints, records their
progress, results and failures, sends their webhooks, and forgets them after retention.

Each worker has an id and holds a lease on the jobs it runs, renewed every third of
JOB_LEASE_SECONDS (and with each progress report). A job whose worker was killed or lost goes
back to the queue when its lease runs out and another worker (another replica, or this one
restarted) runs it from the start; the old worker can no longer record its end, so a job is
never completed twice. A lone server with SQLite also queues again, at start-up, every job it
left running. Webhooks still owed are sent at start-up: nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.domain import Progress
from app.errors import ServiceError
from app.jobs.codec import UnreadableRequest, request_from_json, transcript_json
from app.jobs.store import Job, JobStore
from app.jobs.summary import job_summary
from app.jobs.webhooks import SENDING, WebhookSender
from app.metrics import Metrics
from app.run.transcriber import Transcriber

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 1.0
_RETENTION_SWEEP_S = 600.0
_MAX_BACKOFF_S = 60.0
_WEBHOOK_SWEEP_S = 5.0
ORPHAN_AGE_S = 6 * 3600.0
"""An upload nobody owns is removed once this old (a request in flight is younger)."""
WEBHOOK_CLAIM_S = 300.0
"""A webhook claim not renewed for this long is taken to be dead (a sender writes after
every attempt: at most a backoff of 32 s plus a 10 s timeout apart)."""


class JobCancelled(Exception):
    """Raised inside a running job's thread when it was cancelled or the server stops."""


def new_worker_id() -> str:
    """host-pid-random: readable in the store and unique across restarts."""
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobWorker:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        transcriber: Transcriber,
        metrics: Metrics,
        webhooks: WebhookSender,
        *,
        worker_id: str | None = None,
        load: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """`load` = this worker's process's load, reported with each heartbeat (the
        workers table, read by /health in ray mode); None = no report."""
        self._settings = settings
        self._store = store
        self._transcriber = transcriber
        self._metrics = metrics
        self._webhooks = webhooks
        self.worker_id = worker_id or new_worker_id()
        self._load = load
        self._started_at = time.time()
        self.jobs_done = 0
        self._wake = asyncio.Event()
        self._cancelled: set[str] = set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._sending: set[str] = set()  # job ids whose webhook this worker is sending

    @property
    def uploads(self) -> Path:
        return self._settings.data_dir / "uploads"

    async def start(self) -> None:
        self.uploads.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.sweep_orphaned_uploads)
        settings = self._settings
        alone = settings.serve_mode == "simple" and settings.job_database_url.startswith("sqlite")
        if alone:
            # The only process on this database: whatever is running was left by our past,
            # and so were webhooks being sent.
            stale = self._started_at
            requeued = await asyncio.to_thread(
                self._store.requeue_interrupted, stale, settings.job_max_attempts
            )
            if requeued:
                log.warning(
                    "resuming %d interrupted job(s): %s", len(requeued), ", ".join(requeued)
                )
            await asyncio.to_thread(self._store.release_webhook_claims)
        workers = self._settings.gpu_concurrency
        self._tasks = [asyncio.create_task(self._run_forever()) for _ in range(workers)]
        self._tasks.append(asyncio.create_task(self._sweep_forever()))
        self._tasks.append(asyncio.create_task(self._webhooks_forever()))
        self._tasks.append(asyncio.create_task(self._heartbeat_forever()))

    async def stop(self) -> None:
        """Running jobs stop at their next block and go back to the queue (for the next
        start, or another worker)."""
        self._stopping = True
        for task in [*self._tasks, *self._deliveries]:
            task.cancel()
        for task in [*self._tasks, *self._deliveries]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            released = await asyncio.to_thread(self._store.release, self.worker_id)
            if released:
                log.info("handed %d running job(s) back to the queue", len(released))
        if self._load is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._store.workers.remove, self.worker_id)

    @property
    def alive(self) -> bool:
        """Whether every loop (job runners, retention sweep, heartbeat) still runs."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def submitted(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        self._cancelled.add(job_id)

    # --- running -------------------------------------------------------------------------
    async def _heartbeat_forever(self) -> None:
        every = self._settings.job_lease_seconds / 3
        while True:
            try:
                await asyncio.to_thread(self._store.renew, self.worker_id)
                if self._load is not None:
                    stats = {**self._load(), "jobs_done": self.jobs_done}
                    await asyncio.to_thread(
                        self._store.workers.report, self.worker_id, self._started_at, stats
                    )
            except Exception:  # a database hiccup must not end the heartbeat
                log.exception("job lease renewal failed")
            await asyncio.sleep(every)

    async def _run_forever(self) -> None:
        """Claim and run jobs, for as long as the server runs: a failing iteration (the
        database locked or restarting, a bug) is logged and retried after a pause that
        doubles up to a minute, never the end of the runner."""
        failures = 0
        while True:
            try:
                await self._run_next()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                pause = min(_MAX_BACKOFF_S, 0.5 * 2**failures)
                log.exception(
                    "job runner: an iteration failed (%d in a row); again in %.0f s",
                    failures,
                    pause,
                )
                await asyncio.sleep(pause)

    async def _run_next(self) -> None:
        settings = self._settings
        job = await asyncio.to_thread(
            self._store.claim_next,
            self.worker_id,
            settings.job_lease_seconds,
            settings.job_max_attempts,
        )
        if job is None:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            return
        await self._run(job)

    def _progress(self, job: Job) -> Progress:
        last = [0.0]
        last_stage = [""]

        def report(stage: str, fraction: float) -> None:
            if self._stopping or job.id in self._cancelled:
                raise JobCancelled(job.id)
            now = time.monotonic()
            # At most one write a second, but a new stage is always written (a short stage
            # would otherwise never show: align and diarize did not on a 3-minute file).
            if stage != last_stage[0] or now - last[0] >= _PROGRESS_EVERY_S:
                last[0], last_stage[0] = now, stage
                if not self._store.progress(job.id, self.worker_id, stage, fraction):
                    raise JobCancelled(job.id)  # cancelled, deleted, or no longer ours

        return report

    async def _run(self, job: Job) -> None:
        log.info("job %s started (attempt %d, %s)", job.id, job.attempts, job.filename)
        started = time.monotonic()
        try:
            request = request_from_json(job.request)
        except UnreadableRequest as exc:  # that job fails; the runner goes on
            await self._finish(job, ok=False, error=str(exc))
            return
        try:
            transcript = await self._transcriber.transcribe(
                Path(job.upload_path), request, progress=self._progress(job), queue_limit=False
            )
        except JobCancelled:
            log.info("job %s stopped (%s)", job.id, "shutdown" if self._stopping else "cancelled")
            return
        except ServiceError as exc:
            await self._finish(job, ok=False, error=exc.message)
        except Exception as exc:
            if await self._withdrawn(job):  # deleted under it: its audio went with the record
                log.info("job %s stopped (withdrawn: %s)", job.id, type(exc).__name__)
                return
            log.exception("job %s failed", job.id)
            await self._finish(job, ok=False, error=f"internal error: {type(exc).__name__}")
        else:
            result = await asyncio.to_thread(transcript_json, transcript)
            await self._finish(job, ok=True, result=result, duration_ms=transcript.duration_ms)
        finally:
            self._cancelled.discard(job.id)
        self._metrics.job_duration.observe(time.monotonic() - started)

    async def _withdrawn(self, job: Job) -> bool:
        """Whether the job stopped being this worker's while it ran (cancelled or deleted,
        here or by another process), so an error from it is the withdrawal, not a fault."""
        if self._stopping or job.id in self._cancelled:
            return True
        now = await asyncio.to_thread(self._store.get, job.id)
        return now is None or now.worker_id != self.worker_id

    async def _finish(
        self, job: Job, *, ok: bool, error: str = "", result: str = "", duration_ms: int = 0
    ) -> None:
        if ok:
            done = await asyncio.to_thread(
                self._store.complete, job.id, self.worker_id, result, duration_ms
            )
            self.jobs_done += done
            log.info("job %s completed (%.0f s of audio)", job.id, duration_ms / 1000)
        else:
            done = await asyncio.to_thread(self._store.fail, job.id, self.worker_id, error)
            log.warning("job %s failed: %s", job.id, error)
        if not done:
            log.warning("job %s ended here but was no longer this worker's to finish", job.id)
        # The end above wrote the webhook as owed (`pending`) in the same statement: if this
        # process dies now, any worker's outbox sweep sends it.
        finished = await asyncio.to_thread(self._store.get, job.id)
        if done and finished is not None and finished.webhook_url:
            await self._claim_and_send(finished)

    # --- webhooks: the outbox ------------------------------------------------------------
    async def _claim_and_send(self, job: Job) -> None:
        expired_before = time.time() - WEBHOOK_CLAIM_S
        if await asyncio.to_thread(self._store.claim_webhook, job.id, expired_before):
            self._send_webhook(job)

    async def _webhooks_forever(self) -> None:
        """Send what is owed: pending webhooks (their job ended, the send never started)
        and claims that expired (their sender was killed). A claim is renewed with every
        attempt, so a live sender keeps it."""
        while True:
            try:
                owed = await asyncio.to_thread(
                    self._store.owed_webhooks, time.time() - WEBHOOK_CLAIM_S
                )
                for job in owed:
                    if job.id not in self._sending:
                        await self._claim_and_send(job)
            except Exception:  # a database hiccup: the next sweep tries again
                log.exception("webhook outbox sweep failed")
            await asyncio.sleep(_WEBHOOK_SWEEP_S)

    def _send_webhook(self, job: Job) -> None:
        task = asyncio.create_task(self._deliver(job))
        self._deliveries.add(task)
        self._sending.add(job.id)
        task.add_done_callback(self._deliveries.discard)
        task.add_done_callback(lambda _: self._sending.discard(job.id))

    async def _deliver(self, job: Job) -> None:
        assert job.webhook_url is not None
        body = json.dumps(job_summary(job), separators=(",", ":")).encode()
        store = self._store

        async def failed_attempt(attempt: int, error: str) -> None:
            await asyncio.to_thread(store.webhook, job.id, SENDING, attempt, error)

        delivery = await self._webhooks.deliver(job.webhook_url, job.id, body, failed_attempt)
        await asyncio.to_thread(
            store.webhook, job.id, delivery.status, delivery.attempts, delivery.error
        )
        log.info(
            "webhook for job %s: %s after %d attempt(s)", job.id, delivery.status, delivery.attempts
        )

    # --- retention -----------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        while True:
            await self.sweep_expired()
            await asyncio.sleep(_RETENTION_SWEEP_S)

    def sweep_orphaned_uploads(self, older_than_s: float = ORPHAN_AGE_S) -> list[Path]:
        """Blocking. Upload folders no job owns (a crash between the copy and the job's
        record, or a job deleted while its folder could not be), and synchronous requests'
        uploads left by a replica that was killed, once older than `older_than_s` (younger
        ones may be a submission or a request in flight). Returns what was removed."""
        cutoff = time.time() - older_than_s
        old = [p for p in self.uploads.iterdir() if p.stat().st_mtime < cutoff]
        folders = [p for p in old if p.is_dir() and p.name != "requests"]
        known = self._store.known_ids([p.name for p in folders])
        removed = [p for p in folders if p.name not in known]
        requests = self.uploads / "requests"
        if requests.is_dir():
            removed += [p for p in requests.iterdir() if p.stat().st_mtime < cutoff]
        for path in removed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if removed:
            log.info("removed %d orphaned upload(s) under %s", len(removed), self.uploads)
        return removed

    async def sweep_expired(self) -> int:
        cutoff = time.time() - self._settings.job_retention_hours * 3600
        expired = await asyncio.to_thread(self._store.expired, cutoff)
        for job in expired:
            await asyncio.to_thread(remove_upload, job)
        if expired:
            log.info("removed %d job(s) past JOB_RETENTION_HOURS", len(expired))
        return len(expired)


def remove_upload(job: Job) -> None:
    path = Path(job.upload_path)
    if path.parent.name == job.id:
        shutil.rmtree(path.parent, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
