"""What the job endpoints ask of jobs: submit, look up, page, cancel and delete."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.domain import NO_KEYS, Tenant, Transcript, TranscriptionRequest
from app.errors import Conflict, InvalidRequest, LimitReached, NotFound
from app.jobs.codec import request_json, transcript_from_json
from app.jobs.store import COMPLETED, QUEUED, Job, JobStore
from app.jobs.usage import AudioAllowance
from app.jobs.webhooks import check_webhook_url
from app.jobs.worker import JobWorker, remove_upload


class JobNotReady(Conflict):
    code = "job_not_ready"
    error_type = "invalid_request_error"


class JobService:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        prepare: Callable[[TranscriptionRequest], object],
        worker: JobWorker | None,
    ) -> None:
        """`prepare` checks a request's model and options (raising what a client should
        hear); `worker` is this process's job worker, None where workers run elsewhere
        (ray mode's ingress: replicas poll the store and notice cancellation there)."""
        self._settings = settings
        self._store = store
        self._prepare = prepare
        self._worker = worker
        self.allowance = AudioAllowance(
            settings.max_audio_hours_per_key_per_day, store.usage, settings.max_audio_duration_s
        )
        """MAX_AUDIO_HOURS_PER_KEY_PER_DAY, for jobs and (app.state.allowance) sync routes."""

    def new_upload_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        return job_id, self._settings.data_dir / "uploads" / job_id

    async def submit(
        self,
        job_id: str,
        upload: Path,
        filename: str,
        request: TranscriptionRequest,
        webhook_url: str | None,
        tenant: Tenant = NO_KEYS,
    ) -> Job:
        """Checks what can be checked cheaply now (the key's quota, model, options, header,
        webhook host), so a job that is accepted can run; the upload is removed when it is
        refused. The job belongs to `tenant`'s key."""
        try:
            await self.check_quota(tenant)
            if webhook_url is not None:
                check_webhook_url(webhook_url, self._settings.webhook_hosts)
            await self.allowance.accept(tenant, upload, encoded=request.encoded)
            await asyncio.to_thread(self._prepare, request)
            job = Job(
                id=job_id,
                status=QUEUED,
                created_at=time.time(),
                filename=filename[:255],
                upload_path=str(upload),
                request=request_json(request),
                webhook_url=webhook_url,
                owner=tenant.key_id,
            )
            await asyncio.to_thread(self._store.add, job)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, upload.parent, True)
            raise
        if self._worker is not None:
            self._worker.submitted()
        return job

    async def check_quota(self, tenant: Tenant) -> None:
        """MAX_QUEUED_JOBS_PER_KEY: a key with that many jobs waiting or running gets a 429."""
        most = self._settings.max_queued_jobs_per_key
        if not most or tenant.key_id is None:
            return
        if await asyncio.to_thread(self._store.queued_of, tenant.key_id) >= most:
            raise LimitReached(
                f"This API key has {most} jobs queued or running (MAX_QUEUED_JOBS_PER_KEY); "
                "submit more when one has finished."
            )

    async def get(self, job_id: str, tenant: Tenant = NO_KEYS) -> Job:
        """The job, if it is `tenant`'s to see; another key's job is a 404 like an unknown
        one (a 403 would confirm that it exists)."""
        job = await asyncio.to_thread(self._store.get, job_id, tenant)
        if job is None:
            raise NotFound(f"No job with id '{job_id}'.", param="job_id", code="job_not_found")
        return job

    async def page(
        self, limit: int, after: str | None, tenant: Tenant = NO_KEYS
    ) -> tuple[list[Job], bool]:
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit must be between 1 and 100.", param="limit")
        return await asyncio.to_thread(self._store.page, limit, after, tenant)

    async def result(self, job_id: str, tenant: Tenant = NO_KEYS) -> tuple[Job, Transcript]:
        job = await self.get(job_id, tenant)
        if job.status != COMPLETED or job.result is None:
            raise JobNotReady(
                f"Job '{job_id}' is {job.status}; its result exists once it is completed.",
                param="job_id",
            )
        return job, await asyncio.to_thread(transcript_from_json, job.result)

    async def cancel(self, job_id: str, tenant: Tenant = NO_KEYS) -> Job:
        """Stops a queued or running job (at its next block) and removes its audio; the
        record stays, saying `cancelled`. A finished job cannot be cancelled (409)."""
        job = await self.get(job_id, tenant)
        if not await asyncio.to_thread(self._store.cancel, job_id):
            raise Conflict(
                f"Job '{job_id}' is {job.status}; only queued or running jobs can be cancelled.",
                param="job_id",
                code="job_not_cancellable",
            )
        if self._worker is not None:
            self._worker.cancel(job_id)
        await asyncio.to_thread(remove_upload, job)
        return (await asyncio.to_thread(self._store.get, job_id)) or job

    async def delete(self, job_id: str, tenant: Tenant = NO_KEYS) -> Job:
        """Forgets a job: cancels it if it is queued or running, removes its record, audio
        and result. Afterwards the id is unknown (404)."""
        job = await self.get(job_id, tenant)
        if await asyncio.to_thread(self._store.cancel, job_id) and self._worker is not None:
            self._worker.cancel(job_id)
        await asyncio.to_thread(self._store.delete, job_id)
        await asyncio.to_thread(remove_upload, job)
        return job
