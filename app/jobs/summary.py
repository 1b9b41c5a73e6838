"""The job object clients see (GET /v1/jobs/{id}, the list, webhooks)."""

from __future__ import annotations

from typing import Any

from app.domain import Tenant
from app.jobs.store import Job


def job_summary(job: Job, viewer: Tenant | None = None) -> dict[str, Any]:
    """`viewer`: who asks (None: the job's owner itself, as in its webhook). A webhook URL is
    shown to its owner only (an admin key sees that there is one, not where it points)."""
    shown = viewer is None or viewer.owns(job.owner)
    return {
        "id": job.id,
        "object": "transcription.job",
        "status": job.status,
        "created_at": round(job.created_at, 3),
        "started_at": round(job.started_at, 3) if job.started_at else None,
        "finished_at": round(job.finished_at, 3) if job.finished_at else None,
        "filename": job.filename,
        "progress": {"fraction": job.progress, "stage": job.stage},
        "attempts": job.attempts,
        "audio_duration_s": job.duration_ms / 1000 if job.duration_ms is not None else None,
        "error": job.error,
        "result_url": f"/v1/jobs/{job.id}/result" if job.status == "completed" else None,
        "webhook": {
            "url": job.webhook_url if shown else None,
            "status": job.webhook_status,
            "attempts": job.webhook_attempts,
            "error": job.webhook_error,
        }
        if job.webhook_url
        else None,
    }
