"""The official OpenAI Node SDK (npm `openai`, tests/node/, installed by test.sh from the npm
registry) against the service over real HTTP: models.list, transcriptions as json,
verbose_json with word and segment timestamps, a stream, translations, and the SDK's error
for an upload that is no audio. The calls are in tests/node/sdk_check.mjs."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from audio_tools import JFK, SPANISH, normalize
from live_server import LiveServer

pytestmark = pytest.mark.e2e
NODE_DIR = Path(__file__).parent / "node"


def test_openai_node_sdk_transcribes_translates_streams_and_lists(
    live_server: LiveServer,
) -> None:
    node = shutil.which("node")
    assert node, "node is missing: test.sh installs it (Debian's nodejs)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), "run ./test.sh (npm ci in tests/node)"
    run = subprocess.run(
        [
            node,
            str(NODE_DIR / "sdk_check.mjs"),
            f"{live_server.url}/v1",
            "x",
            str(JFK),
            str(SPANISH),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["sdk"].startswith("6.")
    assert {"whisper-1", "gpt-4o-transcribe", "base", "tiny.en"} <= set(out["models"])
    assert "fellow americans" in " ".join(normalize(out["json"]["text"]))
    verbose = out["verbose"]
    assert verbose["language"] == "english" and verbose["duration"] > 5
    assert verbose["segments"] and verbose["words"]
    words = verbose["words"]
    assert [w["word"].strip(".,").lower() for w in words[-2:]] == ["your", "country"]
    assert all(w["start"] <= w["end"] for w in words)
    assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(words))
    kinds = [e["type"] for e in out["stream"]]
    assert kinds[-1] == "transcript.text.done" and "transcript.text.delta" in kinds
    assert "fellow americans" in " ".join(normalize(out["stream"][-1]["text"]))
    assert "beach" in normalize(out["translation"]["text"]), out["translation"]
    assert out["bad"]["status"] == 400 and out["bad"]["name"] == "BadRequestError"
    assert "failed to decode audio" in out["bad"]["message"].lower()
