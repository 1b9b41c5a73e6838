"""Requests diarizing side by side share the networks' batches (DIARIZATION_BATCH_REQUESTS,
DIARIZE_BESIDE_ASR: a GPU's defaults, set here on the CPU) and each gets its own speakers;
real models, real audio, the app in-process so that the test can hold the torch thread
until both requests' network calls wait there (two requests then share one batch for
certain, not by timing)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from audio_tools import FIXTURES, JFK, pyannote_sample
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.factory import create_app

pytestmark = pytest.mark.e2e


def asr(client: TestClient, path: Path, **params: str) -> Any:
    with path.open("rb") as f:
        response = client.post(
            "/asr", params={"model": "tiny.en", **params}, files={"audio_file": (path.name, f)}
        )
    assert response.status_code == 200, response.text
    return response.json()


def shared_batches(client: TestClient) -> float:
    """Network calls that ran with another request's calls in the same batch."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "whisperx_diarization_batch_requests":
            buckets = {s.labels["le"]: s.value for s in family.samples if "le" in s.labels}
            return buckets["+Inf"] - buckets["1.0"]
    raise AssertionError("no diarization batch metric")


@pytest.fixture
def client(tmp_path: Path, cache_dir: Path) -> Any:
    settings = Settings(
        _env_file=None,
        cache_dir=cache_dir,
        data_dir=tmp_path / "data",
        hf_hub_offline=True,
        diarization_batch_requests=2,
        diarize_beside_asr=True,
        max_active_requests=2,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_two_requests_share_a_batch_and_each_gets_its_own_speakers(client: TestClient) -> None:
    state: Any = client.app.state  # type: ignore[attr-defined]
    batcher = state.pipeline.speakers.service._batcher
    state.pipeline.preload_diarization()
    gate = threading.Event()
    state.torch_thread.submit(lambda: gate.wait(300))
    sample, _ = pyannote_sample()
    with ThreadPoolExecutor(2) as pool:
        two = pool.submit(asr, client, sample)
        one = pool.submit(asr, client, FIXTURES / "conversation.flac")
        deadline = time.monotonic() + 300
        while sum(len(calls) for calls in batcher._queued.values()) < 2:
            assert time.monotonic() < deadline, "the requests' network calls never queued"
            assert not (two.done() or one.done()), "a request ended without diarizing"
            time.sleep(0.05)
        gate.set()
        two_body, conversation = two.result(600), one.result(600)
    assert two_body["speakers"] == ["SPEAKER_00", "SPEAKER_01"], two_body["notes"]
    assert len(conversation["speakers"]) == 2
    assert shared_batches(client) >= 1
    # each request's labels are its own: the sample's words are its women's, not mixed in
    assert {w["speaker"] for w in two_body["word_segments"]} == {"SPEAKER_00", "SPEAKER_01"}


def test_a_lone_voice_diarized_beside_asr_is_one_speaker(client: TestClient) -> None:
    body = asr(client, JFK)
    assert body["speakers"] == ["SPEAKER_00"], body["notes"]
    assert body["diarization"] == "offline-segmentation3-campplus"


def test_torch_engine_asr_runs_while_the_torch_thread_diarizes(
    tmp_path: Path, cache_dir: Path
) -> None:
    """With DIARIZE_BESIDE_ASR the torch engine's batches have a thread of their own: a
    request's words come back while another request's diarization holds the torch thread
    (before, the two stages shared that thread and ASR queued behind speakers)."""
    settings = Settings(
        _env_file=None,
        cache_dir=cache_dir,
        data_dir=tmp_path / "data",
        hf_hub_offline=True,
        asr_engine="torch",
        diarize_beside_asr=True,
        max_active_requests=2,
    )
    with TestClient(create_app(settings)) as client:
        state: Any = client.app.state  # type: ignore[attr-defined]
        state.pipeline.preload_diarization()
        gate, held_to_the_end = threading.Event(), threading.Event()

        def long_diarization() -> None:
            gate.wait(300)
            held_to_the_end.set()

        state.torch_thread.submit(long_diarization)
        try:
            body = asr(client, JFK, diarize="false")
            words = " ".join(s["text"] for s in body["segments"]).lower()
            assert "ask not what your country" in words
            assert not held_to_the_end.is_set()  # answered while the torch thread was held
        finally:
            gate.set()
