"""The real app with a fake engine: routing, options per request, concurrency, error shapes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from audio_tools import JFK
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.diarization.diarizer import Diarization, SpeakerTurn
from app.diarization.service import DiarizationResult
from app.factory import create_app
from unit.fakes import FakeEngine

AUDIO = JFK.read_bytes()


def make_client(tmp_path: Path, engine: FakeEngine, **settings: object) -> TestClient:
    settings.setdefault("diarization_model", "none")  # fakes only: no real pipeline
    settings.setdefault("data_dir", tmp_path / "data")  # never the user's own job store
    app = create_app(
        Settings(_env_file=None, cache_dir=tmp_path, hf_hub_offline=True, **settings),  # type: ignore[arg-type]
        engine=engine,
    )
    # Starlette re-raises after rendering a 500; the test wants the rendered response.
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(delay_s=0.2)


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    with make_client(tmp_path, engine, gpu_concurrency=1, max_queue_size=16) as c:
        yield c


def asr(client: TestClient, **params: str) -> Any:  # TestClient's own response type
    return client.post("/asr", params=params, files={"audio_file": ("a.flac", AUDIO)})


def test_concurrent_requests_keep_their_own_options(client: TestClient, engine: FakeEngine) -> None:
    prompts = [f"prompt-{i}" for i in range(6)]
    languages = ["en", "de", "fr", "es", "it", "nl"]

    def one(i: int) -> str:
        response = asr(client, initial_prompt=prompts[i], language=languages[i], model="base")
        assert response.status_code == 200, response.text
        return response.json()["segments"][0]["text"]

    with ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(one, range(6)))
    assert texts == [f" prompt={p} lang={lang}" for p, lang in zip(prompts, languages, strict=True)]
    assert engine.max_running == 1  # GPU_CONCURRENCY=1: never two at once
    assert engine.loads == ["base"]  # six racing requests, one load


def test_hotwords_and_flags_reach_the_engine(client: TestClient, engine: FakeEngine) -> None:
    asr(
        client,
        hotwords="Speakr, WhisperX",
        vad_filter="false",
        word_timestamps="false",
        diarize="false",
    )
    options = engine.calls[-1]
    assert options.hotwords == "Speakr, WhisperX"
    assert options.vad_filter is False and options.word_timestamps is False


def test_queue_overflow_is_503_with_retry_after(tmp_path: Path) -> None:
    engine = FakeEngine(delay_s=1.0)
    with make_client(tmp_path, engine, max_active_requests=1, max_queue_size=1) as c:

        def v1() -> tuple[int, dict[str, str], dict[str, Any]]:
            r = c.post(
                "/v1/audio/transcriptions",
                data={"model": "base"},
                files={"file": ("a.flac", AUDIO)},
            )
            return r.status_code, dict(r.headers), r.json()

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: v1(), range(4)))
        statuses = sorted(r[0] for r in results)
        assert statuses.count(200) == 2 and statuses.count(503) == 2
        rejected = next(r for r in results if r[0] == 503)
        assert rejected[1]["retry-after"].isdigit()
        assert rejected[1]["x-should-retry"] == "true"
        assert rejected[2]["error"]["code"] == "queue_full"
        assert c.get("/queue-metrics").json()["rejected"] == 2


def test_engine_crash_is_a_500_in_each_family_shape(client: TestClient, engine: FakeEngine) -> None:
    engine.fail_with = RuntimeError("CUDA out of memory")
    response = asr(client)
    assert response.status_code == 500 and "detail" in response.json()
    response = client.post(
        "/v1/audio/transcriptions", data={"model": "base"}, files={"file": ("a.flac", AUDIO)}
    )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    engine.fail_with = None
    assert asr(client).status_code == 200  # the service survives


def test_service_endpoints(client: TestClient) -> None:
    asr(client)
    health = client.get("/health").json()
    assert health["status"] == "healthy" and health["engine"] == "fake"
    assert health["loaded_models"] == ["base"] and health["default_model"] == "base"
    root = client.get("/info").json()
    assert "/asr" in root["endpoints"]
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    requests = families["whisperx_requests"]
    assert any(
        s.labels == {"endpoint": "/asr", "status": "ok"} and s.value >= 1 for s in requests.samples
    )
    for name in (
        "whisperx_request_duration_seconds",
        "whisperx_active_transcriptions",
        "whisperx_loaded_models",
        "whisperx_model_evictions",
        "whisperx_audio_duration_seconds",
        "whisperx_audio_size_megabytes",
        "whisperx_vram_allocated_bytes",
        "whisperx_service_info",
    ):
        assert name in families, name
    queue = client.get("/queue-metrics").json()
    assert {"queued", "running", "capacity", "completed", "rejected", "wait_seconds"} <= set(queue)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn." not in docs.text  # works offline
    assert "/static/docs/swagger-ui-bundle.js" in docs.text
    bundle = client.get("/static/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert client.get("/static/docs/swagger-ui.css").status_code == 200
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "/static/docs/redoc.standalone.js" in redoc.text
    assert "fonts.googleapis" not in redoc.text
    schema = client.get("/openapi.json").json()
    names = {p["name"] for p in schema["paths"]["/asr"]["post"]["parameters"]}
    assert {"task", "language", "model", "output", "word_timestamps", "hotwords"} <= names


def test_detect_language_uses_the_engine(client: TestClient) -> None:
    body = client.post("/detect-language", files={"audio_file": ("a.flac", AUDIO)}).json()
    assert body == {"detected_language": "german", "language_code": "de", "confidence": 0.9}


class ThreadRecordingDiarization:
    """Stands in for the diarization service: one speaker, and the thread it ran on."""

    concurrency = 1

    def __init__(self) -> None:
        self.threads: list[str] = []

    def on_behalf(self, cancelled: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def diarize(self, audio: Any, limits: Any, progress: Any = None) -> DiarizationResult:
        self.threads.append(threading.current_thread().name)
        turn = SpeakerTurn(0, audio.duration_ms, "SPEAKER_00")
        return DiarizationResult(Diarization((turn,), pipeline="recording"))


def test_diarization_of_every_request_runs_on_the_one_torch_thread(client: TestClient) -> None:
    # PyTorch's OpenMP pools are per calling thread (app/compute_thread.py): requests that
    # arrive on different worker threads must still run their torch stages on one.
    recorder = ThreadRecordingDiarization()
    client.app.state.pipeline.speakers.service = recorder  # type: ignore[attr-defined]
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: asr(client, diarize="true"), range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {s["speaker"] for r in responses for s in r.json()["segments"]} == {"SPEAKER_00"}
    assert recorder.threads == ["torch_0"] * 3
