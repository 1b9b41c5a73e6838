"""GET /v1/jobs/{id}/events: a job's progress as server-sent events, until it ends.

Each change of status, stage or progress is a `job.progress` event carrying the job object
(as GET /v1/jobs/{id} returns it); the end is one `job.completed`, `job.failed` or
`job.cancelled` event (`job.deleted` when it is deleted meanwhile), then the stream closes.
The store is read every half second, so any worker process's progress shows (the store is
the one truth about a job).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from app.api.sse import event
from app.domain import Tenant
from app.errors import NotFound
from app.jobs.service import JobService
from app.jobs.store import FINISHED, Job
from app.jobs.summary import job_summary

POLL_S = 0.5
KEEPALIVE_S = 15.0  # a comment line now and then, so proxies keep a quiet stream open


async def job_events(service: JobService, job: Job, tenant: Tenant) -> AsyncIterator[bytes]:
    last: tuple[Any, ...] | None = None
    quiet_since = time.monotonic()
    while True:
        state = (job.status, job.stage, job.progress)
        if state != last:
            kind = f"job.{job.status}" if job.status in FINISHED else "job.progress"
            yield event({"type": kind, "job": job_summary(job, tenant)})
            last, quiet_since = state, time.monotonic()
            if job.status in FINISHED:
                return
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_S)
        try:
            job = await service.get(job.id, tenant)
        except NotFound:  # deleted while watched: say so and end, not a broken stream
            yield event({"type": "job.deleted", "job": {"id": job.id}})
            return
