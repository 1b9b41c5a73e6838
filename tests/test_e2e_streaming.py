"""stream=true through the official openai SDK: server-sent deltas as windows are decoded,
whose concatenation is the non-streamed text of the same request."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from audio_tools import CONVERSATION, FIXTURES, JFK, SPANISH, write_wav
from conftest import ServerFactory
from live_server import LiveServer

from app.pipeline.decode import decode_file

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def minute_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~60 s of speech (three fixtures back to back): more than one 30 s window."""
    parts = [
        decode_file(FIXTURES / f"{n}.flac").samples
        for n in ("conversation3", "conversation", "rapid")
    ]
    samples = np.concatenate([np.asarray(p) for p in parts])
    return write_wav(samples, tmp_path_factory.mktemp("stream") / "minute.wav")


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=300)


def test_streamed_deltas_join_into_the_text_of_the_same_request(
    live_server: LiveServer, minute_clip: Path
) -> None:
    with sdk(live_server) as client:
        with minute_clip.open("rb") as f:
            plain = client.audio.transcriptions.create(model="tiny.en", file=f).text
        with minute_clip.open("rb") as f:
            events = list(client.audio.transcriptions.create(model="tiny.en", file=f, stream=True))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) >= 2, events  # one per decoded window at least
    assert events[-1].type == "transcript.text.done"
    assert "".join(deltas) == events[-1].text == plain
    assert "budget report" in plain.lower()


def test_streamed_diarized_json_sends_speaker_segments(live_server: LiveServer) -> None:
    with sdk(live_server) as client, CONVERSATION.open("rb") as f:
        events = list(
            client.audio.transcriptions.create(
                model="tiny.en",
                file=f,
                stream=True,
                response_format="diarized_json",
                known_speaker_names=["Alice"],
            )
        )
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert [s.speaker for s in segments] == ["Alice", "A", "Alice", "A"]
    assert segments[1].text.startswith("Thanks") and segments[1].start > 5
    assert events[-1].type == "transcript.text.done"
    assert events[-1].text.startswith("Good morning")


def test_what_cannot_be_streamed_is_refused_before_the_stream(client: httpx.Client) -> None:
    def post(data: bytes, **fields: str) -> httpx.Response:
        return client.post(
            "/v1/audio/transcriptions",
            data={"model": "tiny.en", "stream": "true", **fields},
            files={"file": ("a.flac", data)},
        )

    srt = post(CONVERSATION.read_bytes(), response_format="srt")
    assert srt.status_code == 400 and srt.json()["error"]["param"] == "stream"
    garbage = post(os.urandom(2000))
    assert garbage.status_code == 400, garbage.text
    assert garbage.headers["content-type"].startswith("application/json")


def test_translations_stream_too(client: httpx.Client) -> None:
    with SPANISH.open("rb") as f:
        response = client.post(
            "/v1/audio/translations",
            data={"model": "base", "stream": "true"},
            files={"file": (SPANISH.name, f)},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    assert events[-1]["type"] == "transcript.text.done" and deltas
    assert "".join(deltas) == events[-1]["text"] and "beach" in events[-1]["text"].lower()


@pytest.fixture(scope="module")
def one_window_server(server_factory: ServerFactory) -> LiveServer:
    """One window per engine call, one transcription at a time: a long recording takes
    many batches, so where its work stops can be seen."""
    return server_factory(MAX_BATCH_WINDOWS="1", MAX_ACTIVE_REQUESTS="1")


def long_clip(folder: Path, minute: Path, times: int) -> Path:
    samples = np.asarray(decode_file(minute).samples)
    return write_wav(np.tile(samples, times), folder / f"long-{times}.wav")


def test_a_streaming_client_that_leaves_stops_its_work(
    one_window_server: LiveServer, minute_clip: Path, tmp_path: Path
) -> None:
    """The client reads the first delta of a 5-minute recording and hangs up: its thread
    stops at its next window, its permit is free only once the thread has stopped (the log
    says so before /queue-metrics shows it), and none of its windows reach the engine
    after that."""
    server = one_window_server
    clip = long_clip(tmp_path, minute_clip, 5)
    with clip.open("rb") as f, httpx.Client(base_url=server.url, timeout=300) as c:
        with c.stream(
            "POST",
            "/v1/audio/transcriptions",
            data={"model": "tiny.en", "stream": "true"},
            files={"file": (clip.name, f)},
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: ") and "transcript.text.delta" in line:
                    break  # leave after the first window's text
        deadline = time.monotonic() + 30
        while c.get("/queue-metrics").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        metrics = c.get("/queue-metrics").json()
        assert metrics["running"] == 0, metrics
        assert "a transcription's thread stopped: its caller was cancelled" in server.logs()
        decoded = metrics["scheduler"]["windows"]
        assert decoded < 8, metrics  # of ~11 windows; it stopped within a window or two
        time.sleep(3)
        again = c.get("/queue-metrics").json()["scheduler"]
        assert again["windows"] == decoded and again["queued_windows"] == 0, again
        # The permit is free: the next request runs at once.
        with JFK.open("rb") as jfk:
            answer = c.post("/asr", params={"model": "tiny.en"}, files={"audio_file": jfk})
        assert answer.status_code == 200
