"""End to end with ASR_ENGINE=mlx: the real service on MLX's CPU build, over real HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import srt
import webvtt
from audio_tools import CONVERSATION, JFK, JFK_WORDS, normalize, wer
from checks import assert_ordered_timings, assert_verbose_conversation
from live_server import LiveServer, start_server

from app.engines.mlx_engine import prefer_openblas

prefer_openblas()  # this process imports mlx.core below; keep it on OpenBLAS as well
pytest.importorskip("mlx.core")

pytestmark = pytest.mark.e2e

OPENBLAS = Path("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")


@pytest.fixture(scope="module")
def mlx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Its own model cache: the MLX conversion under test must happen here, not be found.
    # The engine loads OpenBLAS itself; LD_PRELOAD is the documented way and is honoured too.
    env = {
        "ASR_ENGINE": "mlx",
        "PRELOAD_MODEL": "tiny.en",  # converted and loaded at start-up
        # The ASR engine is under test here: no speaker or alignment stages after it.
        "DIARIZATION_MODEL": "none",
        "ALIGNMENT": "dtw",
    }
    if OPENBLAS.exists():
        env["LD_PRELOAD"] = str(OPENBLAS)
    server = start_server(
        tmp_path_factory.mktemp("mlx-server"), tmp_path_factory.mktemp("mlx-cache"), **env
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(mlx_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mlx_server.url, timeout=300) as c:
        yield c


def asr(client: httpx.Client, path: Path, **params: str) -> httpx.Response:
    with path.open("rb") as f:
        return client.post("/asr", params=params, files={"audio_file": (path.name, f)})


def test_health_reports_the_mlx_engine(client: httpx.Client, mlx_server: LiveServer) -> None:
    body = client.get("/health").json()
    assert (body["engine"], body["device"], body["compute_type"]) == ("mlx", "cpu", "float32")
    assert body["loaded_models"] == ["tiny.en"]
    assert client.get("/metrics").status_code == 200  # MLX's memory gauge included
    if OPENBLAS.exists():
        assert "reference BLAS" not in mlx_server.logs()  # the engine's slow-BLAS warning


def test_jfk_json_has_the_words_and_ordered_timings(client: httpx.Client) -> None:
    response = asr(client, JFK, model="tiny.en", output="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "en" and body["word_timestamps"] == "whisper-dtw"
    assert wer(JFK_WORDS, " ".join(s["text"] for s in body["segments"])) <= 0.1
    assert_ordered_timings(body)
    heard = normalize(" ".join(w["word"] for w in body["word_segments"]))
    assert heard[:4] == ["and", "so", "my", "fellow"]


def test_srt_and_vtt_parse(client: httpx.Client) -> None:
    subtitles = asr(client, CONVERSATION, model="tiny.en", output="srt")
    assert subtitles.headers["content-type"].startswith("application/x-subrip")
    cues = list(srt.parse(subtitles.text))
    starts = [c.start.total_seconds() for c in cues]
    assert len(cues) >= 2 and starts == sorted(starts) and 0.5 <= starts[0] < 2.5
    assert "budget report" in " ".join(normalize(" ".join(c.content for c in cues)))
    vtt = asr(client, CONVERSATION, model="tiny.en", output="vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert len(webvtt.from_buffer(io.StringIO(vtt.text))) == len(cues)


def test_openai_sdk_verbose_json_words(mlx_server: LiveServer) -> None:
    with (
        openai.OpenAI(
            base_url=f"{mlx_server.url}/v1", api_key="unused", max_retries=0, timeout=300
        ) as sdk,
        CONVERSATION.open("rb") as f,
    ):
        result = sdk.audio.transcriptions.create(
            model="tiny.en",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert_verbose_conversation(result)
