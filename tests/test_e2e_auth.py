"""API keys end to end over real HTTP: with API_KEYS set, every route but /health and the web
page (which holds no data and asks for a key itself) refuses a
request without a key (found by walking the app's own route table, so a new route cannot
be forgotten), and each way of sending a key works: Bearer, X-API-Key, basic auth, the
OpenAI SDK, and Speakr's ASR_BASE_URL with the key in it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import requests
from audio_tools import JFK, normalize
from conftest import ServerFactory
from live_server import LiveServer
from pydantic import SecretStr

from app.config import Settings
from app.factory import create_app

pytestmark = pytest.mark.e2e
KEYS = ("alpha-key-0123456789", "beta-key-9876543210")


@pytest.fixture(scope="module")
def locked(server_factory: ServerFactory) -> LiveServer:
    return server_factory(API_KEYS=f" {KEYS[0]} ,{KEYS[1]}")


def _routes(routes: list[Any], prefix: str = "") -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.165 nests them
        if included is not None:
            yield from _routes(included.routes, prefix + route.include_context.prefix)
        else:
            yield prefix, route


def route_table() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled in."""
    app = create_app(Settings(_env_file=None, api_keys=SecretStr("x")))
    found = []
    for prefix, route in _routes(app.routes):
        path = re.sub(r"\{[^}]+\}", "x", prefix + getattr(route, "path", ""))
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            found.append((method, path))
    return found


def test_every_route_but_health_needs_a_key(locked: LiveServer) -> None:
    table = route_table()
    assert ("POST", "/asr") in table and ("POST", "/v1/audio/transcriptions") in table
    with httpx.Client(base_url=locked.url, timeout=60) as c:
        for method, path in [*table, ("GET", "/no/such/route")]:
            response = c.request(method, path)
            if path in ("/health", "/") or path.startswith("/web"):  # probe, page, its files
                assert response.status_code != 401, (method, path)
                continue
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"].startswith("Bearer")
            if method == "HEAD":  # no body to read
                continue
            body = response.json()
            if path.startswith("/v1/"):
                assert body["error"]["code"] == "invalid_api_key", body
                assert response.headers["x-should-retry"] == "false"
            else:
                assert "API key is required" in body["detail"], body
        assert c.get("/web/app.js").status_code == 200  # the page's files need no key
        wrong = c.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "Invalid API key."


def test_each_way_of_sending_a_key(locked: LiveServer) -> None:
    with httpx.Client(base_url=locked.url, timeout=60) as c:
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {KEYS[0]}"}).is_success
        assert c.get("/v1/models", headers={"X-API-Key": KEYS[1]}).is_success
        assert c.get("/v1/models", auth=("anyone", KEYS[0])).is_success
        assert c.get("/v1/models", auth=(KEYS[1], "")).is_success  # curl -u KEY:
        assert c.get("/v1/models", auth=("anyone", "nope")).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": f"Basic {KEYS[0]}"}).status_code == 401


def test_speakr_with_the_key_in_asr_base_url(locked: LiveServer) -> None:
    # Speakr posts to f"{ASR_BASE_URL}/asr" with requests, which sends the URL's user
    # information as a basic-auth header.
    base = locked.url.replace("http://", f"http://speakr:{KEYS[1]}@")
    with JFK.open("rb") as f:
        response = requests.post(
            f"{base}/asr",
            params={"output": "json", "task": "transcribe", "model": "tiny.en"},
            files={"audio_file": ("jfk.flac", f)},
            timeout=300,
        )
    assert response.status_code == 200, response.text
    assert "country" in normalize(" ".join(s["text"] for s in response.json()["segments"]))


def test_openai_sdk_with_a_key(locked: LiveServer) -> None:
    url = f"{locked.url}/v1"
    with (
        openai.OpenAI(base_url=url, api_key=KEYS[0], max_retries=0, timeout=300) as sdk,
        JFK.open("rb") as f,
    ):
        text = sdk.audio.transcriptions.create(model="tiny.en", file=f).text
    assert "country" in normalize(text)
    with (
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.models.list()


def test_requests_are_counted_per_key_id_and_keys_are_never_shown(locked: LiveServer) -> None:
    with httpx.Client(base_url=locked.url, timeout=60, headers={"X-API-Key": KEYS[0]}) as c:
        for _ in range(3):
            c.get("/v1/models")
        metrics = c.get("/metrics").text
    counts = re.findall(
        r'whisperx_api_key_requests_total\{key_id="(key-[0-9a-f]{10})"\} (\S+)', metrics
    )
    assert len(counts) >= 1 and max(float(n) for _, n in counts) >= 4, counts
    for key in KEYS:
        assert key not in metrics and key not in locked.logs()
