"""Jobs belong to the API key that made them, over real HTTP: another key gets a 404 on
every route of the job (never a 403 that confirms it exists) and an empty list, an admin
key (marked in API_KEYS_FILE) sees every job but not where another key's webhook points,
and MAX_QUEUED_JOBS_PER_KEY answers a 429 with Retry-After in the OpenAI error shape."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from audio_tools import CONVERSATION, JFK
from conftest import ServerFactory
from live_server import LiveServer

pytestmark = pytest.mark.e2e
ALICE, BOB, ROOT_KEY = "alice-key-0123456789", "bob-key-0123456789", "root-key-0123456789"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(f"{ALICE}\n{BOB}\n{ROOT_KEY} admin\n")
    return server_factory(
        API_KEYS_FILE=str(keys),
        PRELOAD_MODEL="tiny.en",
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        MAX_QUEUED_JOBS_PER_KEY="1",
    )


def client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120)


def submit(c: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as f:
        return c.post("/v1/jobs", data=fields, files={"file": (path.name, f)})


def wait_done(c: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(job)


def test_another_keys_job_is_not_found_on_any_route(server: LiveServer) -> None:
    hook = "http://127.0.0.1:9/never-called"
    with client(server, ALICE) as alice, client(server, BOB) as bob:
        made = submit(alice, JFK, model="tiny.en", webhook_url=hook)
        assert made.status_code == 202, made.text
        job_id = made.json()["id"]
        assert made.json()["webhook"]["url"] == hook
        assert wait_done(alice, job_id)["status"] == "completed"
        routes = [
            ("GET", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs/{job_id}/events"),
            ("GET", f"/v1/jobs/{job_id}/result"),
            ("GET", f"/v1/jobs/{job_id}/result?format=srt"),
            ("POST", f"/v1/jobs/{job_id}/cancel"),
            ("DELETE", f"/v1/jobs/{job_id}"),
        ]
        for method, path in routes:
            answer = bob.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "job_not_found"
        assert bob.get("/v1/jobs").json()["data"] == []
        assert bob.get(f"/v1/jobs?after={job_id}").json()["data"] == []
        # Still there for its owner, untouched by the other key's cancel and delete.
        assert alice.get(f"/v1/jobs/{job_id}/result?format=text").status_code == 200
        assert [j["id"] for j in alice.get("/v1/jobs").json()["data"]] == [job_id]
    with client(server, ROOT_KEY) as root:
        seen = root.get("/v1/jobs").json()["data"]
        assert [j["id"] for j in seen] == [job_id]
        assert seen[0]["webhook"]["url"] is None  # only its owner sees where it points
        assert root.get(f"/v1/jobs/{job_id}/result?format=text").status_code == 200


def test_a_key_over_its_queued_jobs_gets_a_429(server: LiveServer) -> None:
    with client(server, BOB) as bob, client(server, ALICE) as alice:
        first = submit(bob, CONVERSATION, model="tiny.en")
        assert first.status_code == 202, first.text
        second = submit(bob, JFK, model="tiny.en")
        assert second.status_code == 429, second.text
        assert second.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(second.headers["retry-after"]) > 0
        assert submit(alice, JFK, model="tiny.en").status_code == 202  # another key's own
        wait_done(bob, first.json()["id"])
        assert submit(bob, JFK, model="tiny.en").status_code == 202  # room again
