"""Our HTTP service as a subprocess (as tests/conftest.py starts it), plus what the bench reads
from it: /asr timings, /metrics stage histograms and the process's resident memory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from clips import ROOT, Clip
from prometheus_client.parser import text_string_to_metric_families

STAGE_METRIC = "whisperx_stage_duration_seconds"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One uvicorn process with the given environment, its model loaded before timing."""

    def __init__(self, model: str, cache_dir: Path, log_path: Path, **env: str) -> None:
        self.model = model
        self.env = env
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "CACHE_DIR": str(cache_dir),
            # Never download during a benchmark: every model must already be here.
            "HF_HUB_OFFLINE": "1",
            "PYANNOTE_METRICS_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "PRELOAD_MODEL": model,
            **env,
        }
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "app.main:app"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path
        self.client = httpx.Client(base_url=self.url, timeout=3600)

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if self.client.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"service not ready:\n{self.log_path.read_text()[-4000:]}")

    def __enter__(self) -> Service:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    # --- requests ------------------------------------------------------------------------
    def request(
        self, clip: Clip, *, diarize: bool = False, client: httpx.Client | None = None
    ) -> tuple[float, str]:
        """POST the clip to /asr as Speakr and curl do; returns (wall seconds, text)."""
        # Always explicit: the service's default for diarize may change, and the speed
        # comparison with faster-whisper needs to know which pipeline ran.
        params = {"output": "json", "model": self.model, "diarize": str(diarize).lower()}
        started = time.perf_counter()
        with clip.path.open("rb") as f:
            response = (client or self.client).post(
                "/asr", params=params, files={"audio_file": (clip.path.name, f)}
            )
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        body = response.json()
        return elapsed, "".join(s["text"] for s in body["segments"]).strip()

    def stage_seconds(self) -> dict[str, float]:
        """Cumulative seconds per pipeline stage, from the Prometheus histogram's _sum."""
        text = self.client.get("/metrics").text
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != STAGE_METRIC:
                continue
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    sums[sample.labels["stage"]] = sample.value
        return sums

    # --- memory --------------------------------------------------------------------------
    def _status_kib(self, field: str) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def rss_mib(self) -> float:
        return self._status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory since start or since the last reset_peak()."""
        return self._status_kib("VmHWM") / 1024

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux clear_refs 5), so a peak belongs to one run.
        Returns False where the kernel refuses; the peak then counts from process start."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False


def stage_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0) > 0}


class ServiceRunner:
    """The service as one of the speed section's runners: each transcription also records
    the process's peak memory during that request and the seconds spent in each stage."""

    def __init__(self, service: Service, *, diarize: bool = False) -> None:
        self.service = service
        self.diarize = diarize
        self.batch_size = int(service.env.get("BATCH_SIZE", "1"))
        self.label = "service"
        self.last_peak_mib = 0.0
        self.last_stages: dict[str, float] = {}

    def transcribe(self, clip: Clip) -> tuple[float, str]:
        self.service.reset_peak()
        before = self.service.stage_seconds()
        wall, text = self.service.request(clip, diarize=self.diarize)
        self.last_peak_mib = self.service.peak_rss_mib()
        self.last_stages = stage_delta(before, self.service.stage_seconds())
        return wall, text
