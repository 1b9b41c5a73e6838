"""Admission queue, model cache and metrics, on the real service with real models."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from audio_tools import JFK, JFK_WORDS, SPANISH, normalize, pyannote_sample, wer
from conftest import ServerFactory
from live_server import LiveServer
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def serial_server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(MAX_ACTIVE_REQUESTS="1", MAX_QUEUE_SIZE="2", MODEL_KEEP_ALIVE_SECONDS="1")


def post(url: str, path: Path, timeout: float = 300, **params: str) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(
            f"{url}/asr", params=params, files={"audio_file": (path.name, f)}, timeout=timeout
        )


def queue(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/queue-metrics").json()


def metric_samples(url: str) -> dict[str, list[Any]]:
    text = httpx.get(f"{url}/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_concurrent_requests_all_succeed_one_at_a_time(serial_server: LiveServer) -> None:
    with ThreadPoolExecutor(3) as pool:
        responses = list(
            pool.map(lambda _: post(serial_server.url, JFK, model="tiny.en"), range(3))
        )
    for response in responses:
        assert response.status_code == 200, response.text
        assert wer(JFK_WORDS, " ".join(s["text"] for s in response.json()["segments"])) <= 0.1
    stats = queue(serial_server.url)
    assert stats["peak_running"] == 1 and stats["capacity"] == 1
    assert stats["completed"] >= 3 and stats["running"] == 0 and stats["queued"] == 0


def test_overflow_gets_503_with_retry_after(serial_server: LiveServer) -> None:
    wav, _ = pyannote_sample()  # 30 s with base: long enough for the others to pile up
    before = queue(serial_server.url)["rejected"]

    def one(i: int) -> httpx.Response:
        if i % 2:
            with JFK.open("rb") as f:
                return httpx.post(
                    f"{serial_server.url}/v1/audio/transcriptions",
                    data={"model": "tiny.en"},
                    files={"file": ("a.flac", f)},
                    timeout=300,
                )
        return post(serial_server.url, wav, model="base")

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(one, range(6)))
    rejected = [r for r in responses if r.status_code == 503]
    served = [r for r in responses if r.status_code == 200]
    assert len(rejected) >= 1 and len(served) >= 3  # 1 running + 2 queued at the least
    assert len(rejected) + len(served) == 6
    for response in rejected:
        assert int(response.headers["retry-after"]) >= 1
        body = response.json()
        message = body["error"]["message"] if "error" in body else body["detail"]
        assert "MAX_QUEUE_SIZE=2" in message
    assert queue(serial_server.url)["rejected"] - before == len(rejected)
    samples = metric_samples(serial_server.url)
    assert samples["whisperx_queue_rejected"][0].value >= len(rejected)


def test_client_that_leaves_while_queued_never_runs(serial_server: LiveServer) -> None:
    wav, _ = pyannote_sample()
    before = queue(serial_server.url)
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(post, serial_server.url, wav, model="base")
        time.sleep(0.5)  # the long request holds the only slot
        with pytest.raises(httpx.ReadTimeout):
            post(serial_server.url, JFK, timeout=1.0, model="tiny.en")
        assert busy.result().status_code == 200
    deadline = time.monotonic() + 10
    while queue(serial_server.url)["abandoned"] == before["abandoned"]:
        assert time.monotonic() < deadline, "the abandoned request was not dropped"
        time.sleep(0.2)
    after = queue(serial_server.url)
    assert after["completed"] - before["completed"] == 1  # only the long request ran
    assert after["queued"] == 0


def test_idle_model_is_evicted_and_reloaded(serial_server: LiveServer) -> None:
    assert post(serial_server.url, JFK, model="tiny.en").status_code == 200
    time.sleep(1.5)  # MODEL_KEEP_ALIVE_SECONDS=1
    assert post(serial_server.url, SPANISH, model="base").status_code == 200
    health = httpx.get(f"{serial_server.url}/health").json()
    assert health["loaded_models"] == ["base"]
    evictions = metric_samples(serial_server.url)["whisperx_model_evictions"]
    assert any(s.labels == {"model": "whisper/tiny.en"} and s.value >= 1 for s in evictions)
    again = post(serial_server.url, JFK, model="tiny.en")  # reloads transparently
    assert again.status_code == 200
    assert "fellow americans" in " ".join(normalize(again.json()["segments"][0]["text"]))


def _sum(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if s.name.endswith("_sum") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_names_and_labels(serial_server: LiveServer) -> None:
    """Makes its own traffic (one transcription, one refused upload, one job) and checks
    what it changed, so it passes alone and in any order."""
    url = serial_server.url
    before = metric_samples(url)
    assert post(url, JFK, model="tiny.en").status_code == 200
    refused = httpx.post(f"{url}/asr", files={"audio_file": ("a.wav", b"")})
    assert refused.status_code == 400
    samples = metric_samples(url)
    expected = {
        "whisperx_requests": {"endpoint", "status"},
        "whisperx_request_duration_seconds": {"endpoint"},
        "whisperx_active_transcriptions": set(),
        "whisperx_loaded_models": set(),
        "whisperx_audio_duration_seconds": set(),
        "whisperx_audio_size_megabytes": set(),
        "whisperx_vram_allocated_bytes": set(),
        "whisperx_service_info": {"version", "engine", "device", "compute_type", "serve_mode"},
        "whisperx_queue_wait_seconds": set(),
        "whisperx_stage_duration_seconds": {"stage"},
        "whisperx_jobs": {"status"},
        "whisperx_job_duration_seconds": set(),
    }
    for name, labels in expected.items():
        assert name in samples, name
        for sample in samples[name]:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    ok = [
        s for s in samples["whisperx_requests"] if s.labels == {"endpoint": "/asr", "status": "ok"}
    ]
    ok_before = [s for s in before.get("whisperx_requests", []) if s.labels == ok[0].labels]
    assert ok[0].value - (ok_before[0].value if ok_before else 0) == 1
    statuses = {s.labels["status"] for s in samples["whisperx_requests"]}
    assert "http_400" in statuses
    for stage in ("decode", "vad", "vad+asr"):
        grown = _sum(samples, "whisperx_stage_duration_seconds", stage=stage) - _sum(
            before, "whisperx_stage_duration_seconds", stage=stage
        )
        assert grown > 0, stage
    heard = _sum(samples, "whisperx_audio_duration_seconds") - _sum(
        before, "whisperx_audio_duration_seconds"
    )
    assert 8.0 < heard < 8.5  # JFK's clip, and nothing else
    assert samples["whisperx_active_transcriptions"][0].value == 0
    assert {s.labels["status"] for s in samples["whisperx_jobs"]} >= {"queued", "completed"}
    info = samples["whisperx_service_info"][0].labels
    assert info["serve_mode"] == httpx.get(f"{url}/health").json()["serve_mode"] == "simple"


@pytest.fixture(scope="module")
def parallel_server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(MAX_ACTIVE_REQUESTS="3", MAX_BATCH_WINDOWS="4")


def test_concurrent_requests_on_one_model_keep_their_own_options(
    parallel_server: LiveServer,
) -> None:
    url = parallel_server.url
    jobs = [
        (SPANISH, {"model": "base", "task": "translate"}),
        (SPANISH, {"model": "base", "language": "es"}),
        (JFK, {"model": "base", "language": "en", "initial_prompt": "Kennedy, 1961."}),
    ]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda job: post(url, job[0], **job[1]).json(), jobs))
    texts = [normalize(" ".join(s["text"] for s in r["segments"])) for r in results]
    assert "beach" in texts[0] and "playa" not in texts[0]
    assert "playa" in texts[1] and results[1]["language"] == "es"
    assert "americans" in texts[2] and results[2]["language"] == "en"
    stats = queue(url)
    assert stats["peak_running"] >= 2  # they really overlapped
    # Their windows went through the scheduler (one window per clip), and /metrics says so.
    batching = stats["scheduler"]
    assert batching["max_batch_windows"] == 4 and batching["queued_windows"] == 0
    assert batching["windows"] >= 3 and 1 <= batching["largest_batch"] <= 4
    samples = metric_samples(url)
    counts = {s.name: s.value for s in samples["whisperx_batch_windows"]}
    assert counts["whisperx_batch_windows_count"] == batching["batches"]
    assert counts["whisperx_batch_windows_sum"] == batching["windows"]
    assert samples["whisperx_batch_capacity_windows"][0].value == 4
