"""Soak: N mixed requests at concurrency C through real HTTP, and what the server keeps.

The mix, one in four each: a synchronous /asr; a job (a third of them cancelled while
queued or running); a streaming transcription whose client hangs up after the first delta;
a synchronous request whose client times out after 1 s. Measured after the first quarter
(warm-up) and at the end: the server's resident memory, open files, threads, and the files
under DATA_DIR; and at the end, that every accepted job ended exactly once as completed or
cancelled (its record), none still queued or running.

    uv run --frozen python bench/soak.py --requests 200 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from clips import OUT
from report import header, loadavg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_tools import CONVERSATION, JFK
from live_server import LiveServer


def process_counts(pid: int, data_dir: Path) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    files = sum(len(files) for _, _, files in os.walk(data_dir))
    return {
        "rss_mib": rss / 1024,
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "data_files": files,
    }


def one(url: str, index: int, jobs: list[tuple[str, bool]]) -> str:
    kind = index % 4
    with httpx.Client(base_url=url, timeout=300) as c:
        if kind == 0:
            with JFK.open("rb") as f:
                r = c.post("/asr", params={"model": "tiny.en"}, files={"audio_file": f})
            return f"sync {r.status_code}"
        if kind == 1:
            with CONVERSATION.open("rb") as f:
                r = c.post("/v1/jobs", data={"model": "tiny.en"}, files={"file": f})
            if r.status_code != 202:
                return f"job {r.status_code}"
            job_id = r.json()["id"]
            cancel = index % 3 == 0
            if cancel:
                time.sleep(0.5)
                c.post(f"/v1/jobs/{job_id}/cancel")
            jobs.append((job_id, cancel))
            return "job 202"
        if kind == 2:
            with (
                CONVERSATION.open("rb") as f,
                c.stream(
                    "POST",
                    "/v1/audio/transcriptions",
                    data={"model": "tiny.en", "stream": "true"},
                    files={"file": f},
                ) as r,
            ):
                for line in r.iter_lines():
                    if "transcript.text.delta" in line:
                        break
            return f"stream-left {r.status_code}"
        try:
            with CONVERSATION.open("rb") as f:
                c.post("/asr", params={"model": "tiny.en"}, files={"audio_file": f}, timeout=1.0)
            return "timeout-finished"
        except httpx.TimeoutException:
            return "timeout-left"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    folder = OUT / "soak"
    folder.mkdir(parents=True, exist_ok=True)
    server = LiveServer(
        folder / "server.log",
        {"PRELOAD_MODEL": "tiny.en", "LOG_LEVEL": "WARNING", "CACHE_DIR": str(OUT / "cache")},
    ).wait_ready()
    data_dir = Path(server.env["DATA_DIR"])
    jobs: list[tuple[str, bool]] = []
    outcomes: dict[str, int] = {}
    rows = []
    started, load = time.perf_counter(), loadavg()
    try:
        warm = args.requests // 4
        with ThreadPoolExecutor(args.concurrency) as pool:
            for phase, indices in (("warm-up", range(warm)), ("rest", range(warm, args.requests))):
                for outcome in pool.map(lambda i: one(server.url, i, jobs), indices):
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                deadline = time.monotonic() + 300
                while httpx.get(f"{server.url}/queue-metrics").json()["running"]:
                    assert time.monotonic() < deadline, "work still running"
                    time.sleep(0.5)
                pending = [
                    j
                    for j, _ in jobs
                    if httpx.get(f"{server.url}/v1/jobs/{j}").json()["status"]
                    in ("queued", "running")
                ]
                while pending and time.monotonic() < deadline:
                    time.sleep(1)
                    pending = [
                        j
                        for j in pending
                        if httpx.get(f"{server.url}/v1/jobs/{j}").json()["status"]
                        in ("queued", "running")
                    ]
                time.sleep(2)
                rows.append((phase, process_counts(server.process.pid, data_dir)))
        statuses: dict[str, int] = {}
        for job_id, cancelled in jobs:
            job = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
            key = f"{'cancel asked' if cancelled else 'plain'} -> {job['status']}"
            statuses[key] = statuses.get(key, 0) + 1
    finally:
        server.stop()
    elapsed = time.perf_counter() - started
    print("### Soak: mixed requests through HTTP\n")
    print(header(None, load))
    print(f"{args.requests} requests at concurrency {args.concurrency}, {elapsed:.0f} s")
    print("outcomes:", dict(sorted(outcomes.items())))
    print("jobs:", dict(sorted(statuses.items())))
    print("| after | RSS MiB | open files | threads | files under DATA_DIR |")
    print("|---|---|---|---|---|")
    for phase, counts in rows:
        print(
            f"| {phase} | {counts['rss_mib']:.0f} | {counts['open_files']:.0f} | "
            f"{counts['threads']:.0f} | {counts['data_files']:.0f} |"
        )
    first, last = rows[0][1], rows[-1][1]
    print(f"RSS growth after warm-up: {100 * (last['rss_mib'] / first['rss_mib'] - 1):+.1f} %")


if __name__ == "__main__":
    main()
