"""SERVE_MODE=ray on this machine: a local Ray cluster with two transcription replicas, jobs
in a real PostgreSQL server (Debian's, started here in a temporary directory), everything
through the ingress over HTTP. Requests and jobs are served by both replicas; the replica
running a job is killed (SIGKILL) while it runs and while synchronous requests are in
flight, and every result still arrives: the job once more on a live replica, the requests
retried by the ingress (its retry counter says some were), and the killed replica's work
folder, with the job's decoded audio in it, is removed when its replacement starts."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from audio_tools import CONVERSATION, JFK
from live_server import LiveServer
from postgres_server import PostgresServer
from test_e2e_jobs import long_wav, submit, wait_for

pytestmark = pytest.mark.e2e
REPLICAS = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[LiveServer]:
    postgres = PostgresServer()
    folder = tmp_path_factory.mktemp("ray")
    env = {
        "SERVE_MODE": "ray",
        "RAY_REPLICAS": str(REPLICAS),
        "RAY_CPUS_PER_REPLICA": "1",
        "CPU_THREADS": "1",
        "PRELOAD_MODEL": "tiny.en",
        "DATABASE_URL": postgres.create_database("whisperx"),
        "JOB_LEASE_SECONDS": "6",
        "CACHE_DIR": str(cache_dir),
        "RAY_ADDRESS": "",  # a local cluster of our own, whatever the machine has
    }
    server = LiveServer(folder / "server.log", env).wait_ready(timeout_s=600)
    try:
        replicas(server, wait_for_count=REPLICAS)
        yield server
    finally:
        server.stop()
        postgres.stop()


def replicas(server: LiveServer, *, wait_for_count: int = 0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 300
    while True:
        found: list[dict[str, Any]] = httpx.get(f"{server.url}/health").json()["replicas"]
        if len(found) >= wait_for_count or time.monotonic() > deadline:
            return found
        time.sleep(1)


def transcribe(url: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=300)
    with JFK.open("rb") as f:
        return client.audio.transcriptions.create(model="tiny.en", file=f).text


def test_two_replicas_share_the_work_and_a_killed_one_loses_nothing(
    cluster: LiveServer, tmp_path: Path
) -> None:
    url = cluster.url
    health = httpx.get(f"{url}/health").json()
    assert health["serve_mode"] == "ray" and health["status"] == "healthy"
    assert len(health["replicas"]) == REPLICAS

    # Requests and jobs at once, through the ingress.
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda _: transcribe(url), range(8)))
    assert all("ask not what your country can do for you" in t.lower() for t in texts), texts
    short = submit(url, CONVERSATION, diarize="false").json()
    assert wait_for(url, short["id"], "completed", timeout_s=120)["attempts"] == 1
    served = {r["id"]: r["completed"] for r in replicas(cluster)}
    assert len(served) == REPLICAS and all(n > 0 for n in served.values()), served

    # A long job; its replica is killed while it runs, with requests in flight.
    long_job = submit(url, long_wav(tmp_path, 10), diarize="false").json()
    running = wait_for(url, long_job["id"], "running", timeout_s=60)
    time.sleep(2)  # well into the job
    assert httpx.get(f"{url}/v1/jobs/{running['id']}").json()["status"] == "running"
    owner = {r["id"]: r for r in replicas(cluster)}
    worker = owner_of(cluster, long_job["id"])
    # The replica's own work folder holds the job's decoded audio now; SIGKILL runs no
    # clean-up, so it is the replacement replica's start that must remove it.
    work = Path(tempfile.gettempdir()) / "whisperx-work" / worker
    assert any(p.name.startswith("work-") for p in work.iterdir()), list(work.iterdir())
    retries_before = retries(url)
    with ThreadPoolExecutor(8) as pool:
        in_flight = [pool.submit(transcribe, url) for _ in range(8)]
        time.sleep(0.5)  # spread over both replicas
        os.kill(owner[worker]["pid"], signal.SIGKILL)
        retried = [f.result() for f in in_flight]
    assert all("ask not what your country" in t.lower() for t in retried), retried
    # Some of them were on the killed replica and were made again on another one.
    assert retries(url) > retries_before, retries(url)

    done = wait_for(url, long_job["id"], "completed", "failed", timeout_s=300)
    assert done["status"] == "completed" and done["attempts"] == 2, done
    result = httpx.get(f"{url}/v1/jobs/{long_job['id']}/result", params={"format": "text"})
    assert result.text.count("budget report is ready") == 10  # the whole recording, once
    survivors = replicas(cluster, wait_for_count=REPLICAS)  # Serve replaced the dead one
    assert worker not in {r["id"] for r in survivors}
    assert not work.exists(), list(work.iterdir())  # removed by the replacement's start
    metrics = httpx.get(f"{url}/metrics").text
    assert f"whisperx_replicas {REPLICAS}.0" in metrics
    queue = httpx.get(f"{url}/queue-metrics").json()
    assert len(queue["replicas"]) == REPLICAS and queue["capacity"] > 0


def retries(url: str) -> float:
    """whisperx_replica_retries_total, all calls: the ingress's count of calls made again."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("whisperx_replica_retries_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def owner_of(server: LiveServer, job_id: str) -> str:
    """The worker holding the job's lease (the store's worker_id), read from the database
    the cluster uses."""
    import sqlalchemy as sa

    engine = sa.create_engine(server.env["DATABASE_URL"])
    with engine.connect() as c:
        owner = c.execute(sa.text("SELECT worker_id FROM jobs WHERE id = :i"), {"i": job_id})
        value = owner.scalar_one()
    engine.dispose()
    assert value, "the running job has no owner"
    return str(value)


def test_bad_input_is_still_a_4xx_through_the_ingress(cluster: LiveServer) -> None:
    bad = httpx.post(
        f"{cluster.url}/v1/audio/transcriptions",
        files={"file": ("x.mp3", b"not audio" * 100)},
        data={"model": "tiny.en"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_audio"
    unknown = httpx.post(
        f"{cluster.url}/asr",
        params={"model": "gpt-9"},
        files={"audio_file": ("a.flac", JFK.read_bytes())},
    )
    assert unknown.status_code == 400 and "unknown model" in unknown.json()["detail"].lower()
