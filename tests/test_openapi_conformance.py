"""The OpenAPI spec tells the truth: schemathesis (`--checks all`, bounded examples, the
coverage, fuzzing and stateful phases) over every operation of a real server on the offline
defaults finds no failure. Uploads carry real speech (tests/schemathesis/hooks.py), so the
2xx answers are checked against the spec as well as the errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ServerFactory

HERE = Path(__file__).resolve().parent / "schemathesis"
sys.path.insert(0, str(HERE))
from hooks import speech_wav  # noqa: E402

pytestmark = pytest.mark.e2e


def completed_job(url: str) -> str:
    """The id of a job that has finished on the server (for the result operation)."""
    sent = httpx.post(f"{url}/v1/jobs", files={"file": ("speech.wav", speech_wav())}, timeout=60)
    assert sent.status_code == 202, sent.text
    job_id: str = sent.json()["id"]
    for _ in range(600):
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            assert job["status"] == "completed", job
            return job_id
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_schemathesis_finds_no_failure(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory()
    seed = completed_job(server.url)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{server.url}/openapi.json",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "hooks",
        "PYTHONPATH": str(HERE),
        "SEED_JOB_ID": seed,
    }
    run = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout, run.stdout[-4000:]
