"""Per-key limits over real HTTP, each a 429 with Retry-After in the route family's own error
shape, before the work: MAX_CONCURRENT_REQUESTS_PER_KEY (a request held open by a slow
upload holds its key's one slot; another key is not limited) and
MAX_AUDIO_HOURS_PER_KEY_PER_DAY (counted by the file's declared duration at acceptance, on
sync routes and jobs alike, kept across a restart; /detect-language is not counted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from audio_tools import CONVERSATION, JFK
from conftest import ServerFactory
from live_server import LiveServer

pytestmark = pytest.mark.e2e
ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


def client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120)


def post_audio(c: httpx.Client, route: str, path: Path, field: str, **data: str) -> httpx.Response:
    with path.open("rb") as f:
        return c.post(route, data=data, files={field: (path.name, f)})


def test_one_request_in_flight_per_key(server_factory: ServerFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{ALICE}\n{BOB}\n")
    server = server_factory(
        API_KEYS_FILE=str(keys), PRELOAD_MODEL="tiny.en", MAX_CONCURRENT_REQUESTS_PER_KEY="1"
    )
    encoded = httpx.Request(
        "POST", server.url + "/asr", files={"audio_file": ("jfk.flac", JFK.read_bytes())}
    )
    body = encoded.read()
    release = threading.Event()
    answer: list[httpx.Response] = []

    def slow_body() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        release.wait(60)
        yield body[len(body) // 2 :]

    def first() -> None:
        with client(server, ALICE) as alice:
            headers = {"Content-Type": encoded.headers["Content-Type"]}
            answer.append(alice.post("/asr", content=slow_body(), headers=headers))

    holder = threading.Thread(target=first)
    holder.start()
    try:
        with client(server, ALICE) as alice, client(server, BOB) as bob:
            # Until the held request reaches the server, a POST without a file is its
            # ordinary 400; once it holds the slot, the same POST is a 429 (before the body).
            deadline = time.monotonic() + 30
            while (refused := alice.post("/asr")).status_code == 400:
                assert time.monotonic() < deadline, "the held request never took the slot"
                time.sleep(0.05)
            assert refused.status_code == 429, refused.text
            assert refused.headers["Retry-After"] == "5"
            assert "MAX_CONCURRENT_REQUESTS_PER_KEY" in refused.json()["detail"]
            openai = post_audio(alice, "/v1/audio/transcriptions", JFK, "file", model="tiny.en")
            assert openai.status_code == 429, openai.text
            assert openai.json()["error"]["type"] == "rate_limit_error"
            assert openai.json()["error"]["code"] == "rate_limit_exceeded"
            assert alice.post("/v1/jobs").status_code == 429
            assert alice.get("/v1/jobs").status_code == 200  # reads are not limited
            assert bob.post("/asr").status_code == 400  # another key: its own slot
            release.set()
            holder.join(120)
            assert answer and answer[0].status_code == 200, answer
            assert "ask not" in " ".join(s["text"] for s in answer[0].json()["segments"]).lower()
            assert alice.post("/asr").status_code == 400  # the slot is free again
    finally:
        release.set()
        holder.join(120)


def seconds_to_midnight_utc() -> float:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


@pytest.fixture(scope="module")
def metered(server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(f"{ALICE}\n{BOB}\n")
    # 14.4 s a day: one 8.2 s JFK fits, a second does not; the 18 s conversation never does.
    # The default model (base: multilingual, for /detect-language).
    return server_factory(API_KEYS_FILE=str(keys), MAX_AUDIO_HOURS_PER_KEY_PER_DAY="0.004")


def test_daily_audio_hours_per_key(metered: LiveServer) -> None:
    with client(metered, ALICE) as alice, client(metered, BOB) as bob:
        first = post_audio(alice, "/asr", JFK, "audio_file")
        assert first.status_code == 200, first.text
        spent = post_audio(alice, "/asr", JFK, "audio_file")
        assert spent.status_code == 429, spent.text
        assert "MAX_AUDIO_HOURS_PER_KEY_PER_DAY" in spent.json()["detail"]
        retry = int(spent.headers["Retry-After"])
        assert abs(retry - seconds_to_midnight_utc()) < 60, retry
        job = post_audio(alice, "/v1/jobs", JFK, "file", model="tiny.en")
        assert job.status_code == 429 and job.json()["error"]["type"] == "rate_limit_error"
        sync = post_audio(alice, "/v1/audio/transcriptions", JFK, "file", model="tiny.en")
        assert sync.status_code == 429, sync.text
        # Only the first 30 s is decoded: language detection is not counted.
        assert post_audio(alice, "/detect-language", JFK, "audio_file").status_code == 200
        # A recording longer than a whole day's allowance can never fit: a 400, not a 429.
        too_long = post_audio(bob, "/asr", CONVERSATION, "audio_file")
        assert too_long.status_code == 400, too_long.text
        assert "MAX_AUDIO_HOURS_PER_KEY_PER_DAY" in too_long.json()["detail"]
        made = post_audio(bob, "/v1/jobs", JFK, "file", model="tiny.en")  # bob's own day
        assert made.status_code == 202, made.text
    metered.stop(close_log=False)
    metered.restart()  # the counts are in the job database, not in the process
    with client(metered, ALICE) as alice:
        assert post_audio(alice, "/asr", JFK, "audio_file").status_code == 429
