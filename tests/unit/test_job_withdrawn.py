"""A job deleted while it runs (its record and audio removed, here or by another process)
stops quietly: the error its missing audio raises is the withdrawal, not a fault with a
traceback. A job that is still this worker's and raises is a failed job. (Orchestration
only: the transcriber is a stand-in; the store is a real SQLite file.)"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, cast

import pytest

from app.config import Settings
from app.domain import TranscriptionRequest
from app.jobs.codec import request_json
from app.jobs.store import FAILED, QUEUED, Job, JobStore
from app.jobs.worker import JobWorker
from app.metrics import Metrics


class DeletesThenReads:
    """Deletes the job's record (as DELETE /v1/jobs/{id} from any process would), then
    reads the audio that went with it."""

    def __init__(self, store: JobStore, job_id: str, *, delete: bool) -> None:
        self.store, self.job_id, self.delete = store, job_id, delete

    async def transcribe(self, path: Path, *_: Any, **__: Any) -> Any:
        if self.delete:
            self.store.delete(self.job_id)
        return path.stat()  # FileNotFoundError: the upload is gone


def run_one(tmp_path: Path, *, delete: bool) -> tuple[JobStore, Job | None]:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    upload = str(tmp_path / "gone" / "upload")
    store.add(Job("j1", QUEUED, time.time(), "a.wav", upload, request_json(TranscriptionRequest())))
    settings = Settings(_env_file=None, data_dir=tmp_path)
    transcriber = cast(Any, DeletesThenReads(store, "j1", delete=delete))
    worker = JobWorker(settings, store, transcriber, Metrics(), cast(Any, None), worker_id="w1")
    job = store.claim_next("w1", 60, 3)
    assert job is not None
    asyncio.run(worker._run(job))
    return store, store.get("j1")


def test_a_job_deleted_while_it_runs_stops_without_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.jobs.worker")
    store, after = run_one(tmp_path, delete=True)
    assert after is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "stopped (withdrawn: FileNotFoundError)" in caplog.text
    store.close()


def test_a_job_still_ours_that_raises_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, after = run_one(tmp_path, delete=False)
    assert after is not None and after.status == FAILED
    assert after.error == "internal error: FileNotFoundError"
    assert "job j1 failed" in caplog.text
    store.close()
