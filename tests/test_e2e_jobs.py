"""Jobs end to end: a real server process, a real SQLite file, a real webhook receiver."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from audio_tools import CONVERSATION, JFK, JFK_WORDS, normalize, silent_opus, wer
from conftest import ServerFactory
from live_server import LiveServer, free_port

from app.jobs.store import RUNNING, Job, JobStore
from app.jobs.webhooks import SIGNATURE_HEADER, verify
from app.pipeline.decode import decode_file

pytestmark = pytest.mark.e2e
SECRET = "test-webhook-secret"


class Receiver:
    """A webhook endpoint: records every POST; answers with the next queued status."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path_job: str) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.received if json.loads(b)["id"] == path_job]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(
        PRELOAD_MODEL="tiny.en",
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        WEBHOOK_SECRET=SECRET,
        MAX_AUDIO_DURATION_S="600",
    )


def submit(url: str, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(f"{url}/v1/jobs", data=fields, files={"file": (path.name, f)}, timeout=60)


def wait_for(url: str, job_id: str, *statuses: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def worker_stopped(server: LiveServer, job_id: str, timeout_s: float = 10) -> None:
    """The worker's own word that the job's work stopped, and no transcription running: a
    cancelled record alone would say nothing of the thread (a 3-minute job runs ~10 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = httpx.get(f"{server.url}/queue-metrics").json()["running"]
        if f"job {job_id} stopped (cancelled)" in server.logs() and running == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id}'s work did not stop within {timeout_s} s")


def long_wav(folder: Path, times: int) -> Path:
    speech = decode_file(CONVERSATION).samples
    pause = np.zeros(2 * 16000, dtype=np.float32)
    samples = np.concatenate([np.concatenate([speech, pause])] * times)
    pcm = (samples * 32767).astype("<i2").tobytes()
    path = folder / f"meeting-{times}.wav"
    header = b"RIFF" + (36 + len(pcm)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += (16000).to_bytes(4, "little") + (32000).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    path.write_bytes(header + b"data" + len(pcm).to_bytes(4, "little") + pcm)
    return path


def test_a_job_that_kills_its_server_3_times_fails_and_says_so(
    server: LiveServer, receiver: Receiver, tmp_path: Path
) -> None:
    """A poison recording (here: a server SIGKILLed while it runs the job, three times)
    is started JOB_MAX_ATTEMPTS (3) times and then failed at the next start, not queued
    again at every restart; its webhook reports the failure once."""
    audio = long_wav(tmp_path, 10)
    hook = receiver.url("/hooks/poison")
    job_id = submit(server.url, audio, model="tiny.en", webhook_url=hook).json()["id"]
    for attempt in (1, 2, 3):
        running = wait_for(server.url, job_id, "running", timeout_s=120)
        assert running["attempts"] == attempt, running
        time.sleep(1.0)  # into its decoding or transcription
        server.kill()
        server.restart()
    failed = wait_for(server.url, job_id, "failed", "completed", "queued", timeout_s=60)
    assert failed["status"] == "failed" and failed["attempts"] == 3, failed
    assert "interrupted 3 times" in failed["error"], failed
    time.sleep(2.0)  # it stays failed: the restart did not queue it again
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["status"] == "failed"
    deadline = time.monotonic() + 30
    while not receiver.bodies(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    assert [b["status"] for b in receiver.bodies(job_id)] == ["failed"]


def test_a_job_survives_kill_9_and_its_webhook_arrives_once_signed(
    server: LiveServer, receiver: Receiver, tmp_path: Path
) -> None:
    audio = long_wav(tmp_path, 10)  # ~3.3 minutes
    hook = receiver.url("/hooks/a")
    response = submit(server.url, audio, model="tiny.en", webhook_url=hook)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and response.headers["location"] == f"/v1/jobs/{job['id']}"
    running = wait_for(server.url, job["id"], "running", timeout_s=60)
    time.sleep(1.5)  # into decoding, VAD and transcription
    assert httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()["status"] == "running", running
    server.kill()  # no shutdown code runs: the row still says running
    server.restart()
    done = wait_for(server.url, job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["attempts"] == 2 and done["progress"] == {"fraction": 1.0, "stage": "done"}
    assert 200 < done["audio_duration_s"] < 220
    assert "resuming 1 interrupted job" in server.logs()
    deadline = time.monotonic() + 30
    while not receiver.bodies(job["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a second delivery, if there were one, would have come by now
    deliveries = [(h, b) for h, b in receiver.received if json.loads(b)["id"] == job["id"]]
    assert len(deliveries) == 1
    headers, body = deliveries[0]
    assert verify(SECRET, headers[SIGNATURE_HEADER], body)
    assert not verify("another-secret", headers[SIGNATURE_HEADER], body)
    assert not verify(SECRET, headers[SIGNATURE_HEADER], body.replace(b"completed", b"failed!!!"))
    summary = json.loads(body)
    assert summary["status"] == "completed" and summary["result_url"].endswith("/result")
    final = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
    assert final["webhook"]["status"] == "delivered" and final["webhook"]["attempts"] == 1

    # The job's transcript matches the synchronous endpoint's for the same options. Not
    # byte for byte here: this recording repeats one conversation ten times, which sends
    # some windows into Whisper's temperature fallback, and faster-whisper's sampling there
    # is not seeded (two /asr requests differ too). The exact comparison is on JFK below.
    result = httpx.get(f"{server.url}{summary['result_url']}?format=json", timeout=60).json()
    with audio.open("rb") as f:
        direct = httpx.post(
            f"{server.url}/asr",
            params={"model": "tiny.en"},
            files={"audio_file": (audio.name, f)},
            timeout=300,
        ).json()
    job_text = " ".join(s["text"] for s in result["segments"])
    assert wer(" ".join(s["text"] for s in direct["segments"]), job_text) <= 0.05
    assert normalize(job_text).count("budget") == 10


def test_every_result_format_and_the_list(server: LiveServer) -> None:
    job = submit(server.url, JFK, model="tiny.en", diarize="false").json()
    wait_for(server.url, job["id"], "completed")
    base = f"{server.url}/v1/jobs/{job['id']}/result"
    text = httpx.get(base, params={"format": "text"}).text
    assert wer(JFK_WORDS, text) <= 0.1
    assert httpx.get(base, params={"format": "srt"}).text.startswith("1\n00:00:")
    assert httpx.get(base, params={"format": "vtt"}).text.startswith("WEBVTT")
    assert httpx.get(base, params={"format": "tsv"}).text.startswith("start\tend\ttext")
    # Through a job and through /asr, the same options give the same transcript exactly.
    json_result = httpx.get(base, params={"format": "json"}).json()
    with JFK.open("rb") as f:
        direct = httpx.post(
            f"{server.url}/asr",
            params={"model": "tiny.en", "diarize": "false"},
            files={"audio_file": (JFK.name, f)},
            timeout=120,
        ).json()
    assert json_result["segments"] == direct["segments"]
    verbose = httpx.get(base, params={"format": "verbose_json"}).json()
    assert verbose["words"] and verbose["segments"][0]["avg_logprob"] < 0
    diarized = httpx.get(base, params={"format": "diarized_json"}).json()
    assert diarized["segments"] and diarized["task"] == "transcribe"
    bad = httpx.get(base, params={"format": "docx"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"

    first = httpx.get(f"{server.url}/v1/jobs", params={"limit": 1}).json()
    assert first["object"] == "list" and first["data"][0]["id"] == job["id"]  # newest first
    assert first["has_more"] is True
    second = httpx.get(f"{server.url}/v1/jobs", params={"limit": 1, "after": job["id"]}).json()
    assert second["data"] and second["data"][0]["created_at"] <= first["data"][0]["created_at"]


def test_cancel_delete_and_the_errors_a_client_can_act_on(
    server: LiveServer, tmp_path: Path
) -> None:
    url = server.url
    long_job = submit(url, long_wav(tmp_path, 10), model="tiny.en").json()
    queued = submit(url, JFK, model="tiny.en").json()  # waits behind the long one
    not_ready = httpx.get(f"{url}/v1/jobs/{queued['id']}/result")
    assert not_ready.status_code == 409 and not_ready.json()["error"]["code"] == "job_not_ready"
    stopped = httpx.post(f"{url}/v1/jobs/{queued['id']}/cancel").json()
    assert stopped["status"] == "cancelled"
    assert not Path(server.env["DATA_DIR"], "uploads", queued["id"]).exists()
    again = httpx.post(f"{url}/v1/jobs/{queued['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_cancellable"
    wait_for(url, long_job["id"], "running", timeout_s=60)
    cancelled = httpx.post(f"{url}/v1/jobs/{long_job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    worker_stopped(server, long_job["id"])  # not only the record: its work ended
    assert httpx.get(f"{url}/v1/jobs/{long_job['id']}").json()["status"] == "cancelled"
    assert httpx.get(f"{url}/v1/jobs/{queued['id']}").json()["status"] == "cancelled"
    deleted = httpx.delete(f"{url}/v1/jobs/{queued['id']}").json()
    assert deleted == {"id": queued["id"], "object": "transcription.job.deleted", "deleted": True}
    assert httpx.get(f"{url}/v1/jobs/{queued['id']}").status_code == 404
    running = submit(url, long_wav(tmp_path, 10), model="tiny.en").json()
    wait_for(url, running["id"], "running", timeout_s=60)
    assert httpx.delete(f"{url}/v1/jobs/{running['id']}").json()["deleted"] is True
    worker_stopped(server, running["id"])  # and it did not bring the record back
    assert httpx.get(f"{url}/v1/jobs/{running['id']}").status_code == 404
    assert not Path(server.env["DATA_DIR"], "uploads", running["id"]).exists()

    missing = httpx.get(f"{url}/v1/jobs/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    refused = submit(url, JFK, webhook_url="http://10.0.0.1/hook")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "webhook_url"
    garbage = tmp_path / "x.mp3"
    garbage.write_bytes(b"not audio at all" * 100)
    assert submit(url, garbage).status_code == 400
    too_long = submit(url, long_wav(tmp_path, 40))  # ~13 min > MAX_AUDIO_DURATION_S=600
    assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "audio_too_long"
    uploads = Path(server.env["DATA_DIR"], "uploads")
    assert {p.name for p in uploads.iterdir()} <= {long_job["id"]} | {
        j["id"] for j in httpx.get(f"{url}/v1/jobs", params={"limit": 100}).json()["data"]
    }  # refused uploads left nothing behind


def test_a_webhook_answered_5xx_is_retried_and_4xx_is_not(
    server: LiveServer, receiver: Receiver
) -> None:
    receiver.statuses[:] = [503, 200]
    retried = submit(
        server.url, JFK, model="tiny.en", diarize="false", webhook_url=receiver.url("/r")
    )
    job = wait_for(server.url, retried.json()["id"], "completed")
    deadline = time.monotonic() + 20
    while job["webhook"]["status"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.3)
        job = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
    assert job["webhook"]["status"] == "delivered" and job["webhook"]["attempts"] == 2
    receiver.statuses[:] = [410]
    gone = submit(server.url, JFK, model="tiny.en", diarize="false", webhook_url=receiver.url("/g"))
    job = wait_for(server.url, gone.json()["id"], "completed")
    deadline = time.monotonic() + 10
    while job["webhook"]["status"] in (None, "pending", "sending") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
    assert job["webhook"] == {
        "url": receiver.url("/g"),
        "status": "failed",
        "attempts": 1,
        "error": "HTTP 410",
    }


def test_silence_is_answered_at_once_with_a_note(server: LiveServer, tmp_path: Path) -> None:
    """Nine minutes of silence in a small Opus file: no transcription, no diarization."""
    audio = silent_opus(tmp_path / "silence.ogg", 540)
    assert audio.stat().st_size < 2_000_000
    with audio.open("rb") as f:
        response = httpx.post(
            f"{server.url}/asr", params={"model": "tiny.en"}, files={"audio_file": f}, timeout=120
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["segments"] == [] and body["speakers"] == [] and 539 < body["duration"] < 541
    assert body["notes"] == ["no speech found: the later stages did not run"]
    assert body["diarization"] is None


def test_audio_past_max_duration_is_413_before_any_model_runs(
    server: LiveServer, tmp_path: Path
) -> None:
    """MAX_AUDIO_DURATION_S=600: refused from a WAV header, and from raw PCM's length."""
    wav = long_wav(tmp_path, 40)  # ~13 minutes
    with wav.open("rb") as f:
        by_header = httpx.post(f"{server.url}/asr", files={"audio_file": f}, timeout=60)
    assert by_header.status_code == 413
    assert "MAX_AUDIO_DURATION_S" in by_header.json()["detail"]
    pcm = wav.read_bytes()[44:]
    raw = httpx.post(
        f"{server.url}/v1/jobs",
        params={"encode": "false"},
        files={"file": ("a.pcm", pcm)},
        timeout=60,
    )
    assert raw.status_code == 413 and raw.json()["error"]["code"] == "audio_too_long"


def test_job_progress_streams_as_server_sent_events(server: LiveServer, tmp_path: Path) -> None:
    job = submit(server.url, long_wav(tmp_path, 3), model="tiny.en", diarize="true").json()
    events = []
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job['id']}/events", timeout=300) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "job.completed" and set(kinds[:-1]) == {"job.progress"}, kinds
    assert all(e["job"]["id"] == job["id"] for e in events)
    fractions = [e["job"]["progress"]["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = {e["job"]["progress"]["stage"] for e in events}
    assert {"decode", "transcribe"} <= stages, stages  # progress names the stage it is in
    # A finished job's stream is its one final event; an unknown job is a 404 at once.
    again = httpx.get(f"{server.url}/v1/jobs/{job['id']}/events", timeout=30).text
    assert again.count("data: ") == 1 and "job.completed" in again
    missing = httpx.get(f"{server.url}/v1/jobs/nope/events", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"]


def test_progress_moves_through_every_stage_of_a_3_minute_job(
    server: LiveServer, tmp_path: Path
) -> None:
    """What the page's bar shows: a 3-minute recording on the page's default model, with
    speakers. Transcribe reports between windows and, while a batch is in the engine, the
    scheduler's estimate of it (a lone job's windows are one batch, which held the bar at
    one value for a minute on this CPU); align and diarize show (a short stage was lost to
    the once-a-second write before); diarize reports from inside the pipeline's chunks."""
    job = submit(server.url, long_wav(tmp_path, 9), model="base", diarize="true").json()
    seen: list[tuple[float, str, float]] = []
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job['id']}/events", timeout=600) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                progress = event["job"]["progress"]
                seen.append((time.monotonic(), progress["stage"], progress["fraction"]))
    assert seen[-1][2] == 1.0, seen
    by_stage: dict[str, set[float]] = {}
    for _, stage, fraction in seen:
        by_stage.setdefault(stage, set()).add(fraction)
    assert {"decode", "transcribe", "align", "diarize"} <= set(by_stage), by_stage
    assert len(by_stage["transcribe"]) >= 5, by_stage["transcribe"]
    assert len(by_stage["diarize"]) >= 2, by_stage["diarize"]
    fractions = [f for _, _, f in seen]
    assert fractions == sorted(fractions)
    stalls = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    print(f"progress: {len(seen)} updates, longest without one {max(stalls):.1f} s")


def test_a_webhook_owed_when_the_server_died_is_sent_once_after_restart(
    server: LiveServer, receiver: Receiver
) -> None:
    """A kill between a job's end and its webhook's send leaves the row as the job's end
    wrote it: completed, webhook `pending` (one statement). Made so in the real database
    file while the server is down, the restarted server's outbox sends it, once."""
    server.stop(close_log=False)
    store = JobStore(f"sqlite:///{Path(server.env['DATA_DIR']) / 'jobs.db'}")
    job_id = "owed0000000000000000000000000000"
    store.add(
        Job(
            job_id,
            RUNNING,
            time.time(),
            "a.wav",
            "/gone",
            "{}",
            attempts=1,
            worker_id="dead",
            webhook_url=receiver.url("/hooks/owed"),
        )
    )
    assert store.complete(job_id, "dead", '{"segments": []}', 1000)
    owed = store.get(job_id)
    assert owed is not None and owed.webhook_status == "pending"
    store.close()
    server.restart()
    deadline = time.monotonic() + 30
    while not receiver.bodies(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(6.0)  # longer than the outbox's sweep: a second send would have come
    assert len(receiver.bodies(job_id)) == 1, receiver.bodies(job_id)
    final = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
    assert final["webhook"]["status"] == "delivered"
