"""Our HTTP service as a subprocess (tests/live_server.py, the harness the tests use too),
plus what the bench reads from it: /asr timings, /metrics stage histograms and memory."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from clips import Clip
from live_server import ROOT, LiveServer
from prometheus_client.parser import text_string_to_metric_families

STAGE_METRIC = "whisperx_stage_duration_seconds"


class Service(LiveServer):
    """The service with `model` preloaded (so load time is never timed), quiet logs."""

    def __init__(
        self,
        model: str,
        cache_dir: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        root: Path = ROOT,
    ) -> None:
        base = {"CACHE_DIR": str(cache_dir), "LOG_LEVEL": "WARNING", "PRELOAD_MODEL": model}
        super().__init__(log_path, {**base, **(env or {})}, root=root)
        self.model = model
        self.client = httpx.Client(base_url=self.url, timeout=3600)

    def __enter__(self) -> Service:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.stop()

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
