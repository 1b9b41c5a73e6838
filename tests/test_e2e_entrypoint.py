"""README's first command (./entrypoint.sh) serves, and test-api.sh transcribes through it:
in simple mode, and with SERVE_MODE=ray (a local Ray cluster, one replica). Each mode runs
in an environment of its own synced `--no-dev --exact` (with the ray extra for ray), as a
newcomer's machine has it: the suite's own environment holds the dev group, which once hid
a runtime import (httpx) that only the dev group installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from audio_tools import JFK
from live_server import ROOT, free_port

pytestmark = pytest.mark.e2e


def runtime_environment(folder: Path, mode: str) -> Path:
    """A virtual environment with exactly the locked runtime dependencies of `mode`."""
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    extra = ["--extra", "ray"] if mode == "ray" else []
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(folder)}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--exact", "--offline", "-q", *extra],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=600,
    )
    dev_only = subprocess.run(
        [str(folder / "bin" / "python"), "-c", "import pytest"], capture_output=True
    )
    assert dev_only.returncode != 0, "the runtime environment holds the dev group"
    return folder


@pytest.mark.parametrize("mode", ["simple", "ray"])
def test_entrypoint_serves_and_test_api_transcribes(
    mode: str, tmp_path: Path, cache_dir: Path
) -> None:
    port = free_port()
    venv = runtime_environment(tmp_path / "venv", mode)
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "CACHE_DIR": str(cache_dir),
        "DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "PRELOAD_MODEL": "tiny.en",
        "SERVE_MODE": mode,
        "RAY_ADDRESS": "",
        "RAY_REPLICAS": "1",
    }
    env.pop("VIRTUAL_ENV", None)  # the suite's own environment: not the one to serve from
    log = (tmp_path / "entrypoint.log").open("wb")
    server = subprocess.Popen(
        [str(ROOT / "entrypoint.sh")],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "entrypoint.log").read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                # Ray Serve's proxy answers a plain-text 404 until the app is deployed.
                health = response.json() if response.status_code == 200 else {}
                if health and (mode == "simple" or health["replicas"]):  # ray: a replica
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "entrypoint.sh did not start serving"
            time.sleep(0.5)
        assert health["serve_mode"] == mode
        assert health["loaded_models"] == ["tiny.en"]  # PRELOAD_MODEL loads at start-up
        if mode == "simple":
            assert health["loaded"]["diarization"] == ["offline-segmentation3-campplus"]
        result = subprocess.run(
            [str(ROOT / "test-api.sh"), "127.0.0.1", str(port), str(JFK)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "fellow Americans" in result.stdout
        assert result.stdout.rstrip().endswith("OK")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        log.close()
