"""Memory over many requests and throughput under concurrent clients, through the service."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
from clips import Clip
from report import Samples, Table, concurrently, percentile
from service import Service


@dataclass(frozen=True)
class LoadResult:
    wall_s: float
    latencies: list[float]
    """Wall seconds of each request that succeeded."""
    audio_s: float
    """Audio seconds those requests carried."""
    errors: int


def closed_loop(service: Service, clips: list[Clip], clients: int, per_client: int) -> LoadResult:
    """`clients` clients at once, each sending `per_client` requests back to back (/asr, no
    speakers), client i cycling through `clips` from clip i."""
    results: list[tuple[float, float] | None] = []

    def client(offset: int) -> None:
        with httpx.Client(base_url=service.url, timeout=3600) as http:
            for k in range(per_client):
                chosen = clips[(offset + k) % len(clips)]
                try:
                    results.append((service.request(chosen, client=http)[0], chosen.duration_s))
                except httpx.HTTPError:
                    results.append(None)

    wall = concurrently([partial(client, i) for i in range(clients)])
    ok = [r for r in results if r is not None]
    return LoadResult(wall, [w for w, _ in ok], sum(d for _, d in ok), len(results) - len(ok))


def memory_section(
    model: str, clip: Clip, requests: int, cache_dir: Path, log_path: Path, env: dict[str, str]
) -> Table:
    """Resident memory of the service across `requests` sequential requests of one clip:
    growth after the first request is what a long-running server would accumulate."""
    table = Table(
        f"Service memory over {requests} sequential requests ({model}, {clip.name})",
        ["requests", "RSS MiB", "growth since request 1 MiB", "peak RSS (VmHWM) MiB"],
    )
    checkpoints = sorted({1, 2, 5, 10, 25, requests} & set(range(1, requests + 1)))
    with Service(model, cache_dir, log_path, {"GPU_CONCURRENCY": "1", **env}) as service:
        table.add(0, f"{service.rss_mib():.0f}", "-", f"{service.peak_rss_mib():.0f}")
        first = 0.0
        latencies = Samples()
        for n in range(1, requests + 1):
            wall, _ = service.request(clip)
            latencies.add(wall)
            if n == 1:
                first = service.rss_mib()
            if n in checkpoints:
                rss = service.rss_mib()
                table.add(n, f"{rss:.0f}", f"{rss - first:+.0f}", f"{service.peak_rss_mib():.0f}")
    table.notes.append(
        f"latency per request: median {latencies.median:.2f} s, {latencies.spread()} s; "
        "row 0 is after start-up with the model loaded"
    )
    return table


def _client_loop(url: str, clip: Clip, model: str, count: int, out: list, errors: list) -> None:
    with httpx.Client(base_url=url, timeout=3600) as client:
        for _ in range(count):
            started = time.perf_counter()
            with clip.path.open("rb") as f:
                response = client.post(
                    "/asr",
                    params={"output": "json", "model": model, "diarize": "false"},
                    files={"audio_file": (clip.path.name, f)},
                )
            elapsed = time.perf_counter() - started
            (out if response.status_code == 200 else errors).append(elapsed)


def throughput_section(
    model: str,
    clip: Clip,
    clients: list[int],
    concurrencies: list[int],
    per_client: int,
    cache_dir: Path,
    log_path: Path,
    env: dict[str, str],
) -> Table:
    """Requests per minute and latency with N clients each sending `per_client` requests
    back to back, for each GPU_CONCURRENCY (transcriptions the service runs at once)."""
    table = Table(
        f"Throughput ({model}, {clip.name}, {per_client} requests per client)",
        [
            *("GPU_CONCURRENCY", "clients", "requests", "errors", "wall s", "req/min"),
            *("p50 latency s", "p95 latency s", "audio min per min"),
        ],
    )
    for permits in concurrencies:
        with Service(model, cache_dir, log_path, {"GPU_CONCURRENCY": str(permits), **env}) as svc:
            svc.request(clip)  # warm-up
            for n in clients:
                latencies: list[float] = []
                errors: list[float] = []
                wall = concurrently(
                    [
                        partial(_client_loop, svc.url, clip, model, per_client, latencies, errors)
                        for _ in range(n)
                    ]
                )
                done = len(latencies)
                table.add(
                    permits,
                    n,
                    done + len(errors),
                    len(errors),
                    f"{wall:.1f}",
                    f"{done / wall * 60:.1f}",
                    f"{percentile(latencies, 50):.2f}" if latencies else "-",
                    f"{percentile(latencies, 95):.2f}" if latencies else "-",
                    f"{done * clip.duration_s / wall:.1f}",
                )
    return table
