"""Supervised jobs, on the real app with a fake engine and a real SQLite job store: a
database error in the runner's claim and a stored request that cannot be read do not stop
the runner (the bad row fails with a reason, later jobs run), and /health answers 503
"unhealthy" once a job runner is dead."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from audio_tools import JFK
from fastapi.testclient import TestClient

from app.jobs.store import QUEUED, Job, JobStore
from unit.fakes import FakeEngine
from unit.test_app_orchestration import make_client

AUDIO = JFK.read_bytes()


def submit(client: TestClient) -> str:
    answer = client.post("/v1/jobs", files={"file": ("a.flac", AUDIO)}, data={"diarize": "false"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def finished(client: TestClient, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_database_error_and_a_corrupt_row_do_not_stop_the_runner(tmp_path: Path) -> None:
    with make_client(tmp_path, FakeEngine(), data_dir=tmp_path / "data") as client:
        store: JobStore = client.app.state.job_store  # type: ignore[attr-defined]
        real_claim, failures = store.claim_next, list[int]()

        def flaky_claim(*args: Any, **kwargs: Any) -> Job | None:
            if len(failures) < 2:
                failures.append(1)
                raise sa.exc.OperationalError("claim", {}, Exception("database is locked"))
            return real_claim(*args, **kwargs)

        store.claim_next = flaky_claim  # type: ignore[method-assign]
        good = submit(client)
        assert finished(client, good)["status"] == "completed"
        assert len(failures) == 2
        assert client.get("/health").status_code == 200
        # A row whose stored request cannot be read (corrupt, or from a newer release).
        for bad_id, request in (("corrupt", "{not json"), ("newer", '{"version": 99}')):
            store.add(Job(bad_id, QUEUED, time.time(), "x.flac", str(tmp_path / "x"), request))
            client.app.state.job_worker.submitted()  # type: ignore[attr-defined]
            failed = finished(client, bad_id)
            assert failed["status"] == "failed" and "request" in failed["error"], failed
        assert finished(client, submit(client))["status"] == "completed"


def test_health_is_unhealthy_when_a_job_runner_is_dead(tmp_path: Path) -> None:
    with make_client(tmp_path, FakeEngine(), data_dir=tmp_path / "data") as client:
        assert client.get("/health").json()["status"] == "healthy"
        worker = client.app.state.job_worker  # type: ignore[attr-defined]
        worker._tasks[0].cancel()  # as if its loop had ended
        time.sleep(0.2)
        answer = client.get("/health")
        assert answer.status_code == 503
        assert answer.json()["status"] == "unhealthy"
        assert answer.json()["problems"] == ["the job worker stopped"]
