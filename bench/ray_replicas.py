"""SERVE_MODE=ray on one machine: throughput and latency with 1 and 2 transcription replicas,
beside simple mode (one uvicorn process) in the same run, through HTTP (/asr, no speakers).

  cd bench && ../.venv/bin/python ray_replicas.py --model tiny.en --clients 1,2,4,8

The machine's cores are split between the replicas (CPU_THREADS and RAY_CPUS_PER_REPLICA):
simple mode and one replica get every core; two replicas get half each. Jobs share a SQLite
file under DATA_DIR (one machine); across machines they would share PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
from clips import OUT, Clip, clip
from load import closed_loop
from report import Table, header, loadavg, percentile
from service import Service


def configs(cores: int) -> dict[str, dict[str, str]]:
    half = max(1, cores // 2)
    return {
        f"simple (uvicorn, CPU_THREADS={cores})": {"CPU_THREADS": str(cores)},
        f"ray, 1 replica ({cores} CPUs)": {
            "SERVE_MODE": "ray",
            "RAY_REPLICAS": "1",
            "RAY_CPUS_PER_REPLICA": str(cores),
            "CPU_THREADS": str(cores),
        },
        f"ray, 2 replicas ({half} CPU each)": {
            "SERVE_MODE": "ray",
            "RAY_REPLICAS": "2",
            "RAY_CPUS_PER_REPLICA": str(half),
            "CPU_THREADS": str(half),
        },
    }


def replicas_ready(service: Service, count: int) -> None:
    """Ray mode: wait until every replica reported (health answers before they load)."""
    for _ in range(600):
        body = httpx.get(f"{service.url}/health").json()
        if len(body.get("replicas", [None] * count)) >= count:
            return
        time.sleep(0.5)
    raise TimeoutError("replicas never reported")


def throughput(
    model: str, clips: list[Clip], clients: list[int], per_client: int, cache: Path, log: Path
) -> Table:
    cores = os.cpu_count() or 2
    table = Table(
        f"Throughput ({model}, /asr without speakers, clips {', '.join(c.name for c in clips)}, "
        f"{per_client} requests per client)",
        ["mode", "clients", "requests", "errors", "wall s", "req/min", "x real time", "p50 s",
         "p95 s"],
    )  # fmt: skip
    for label, env in configs(cores).items():
        data = Path(tempfile.mkdtemp(prefix="bench-data-"))
        with Service(model, cache, log, {**env, "DATA_DIR": str(data)}) as service:
            if env.get("SERVE_MODE") == "ray":
                replicas_ready(service, int(env["RAY_REPLICAS"]))
            for _ in range(2):  # warm-up: every replica, every clip's shape
                for c in clips:
                    service.request(c)
            for n in clients:
                run = closed_loop(service, clips, n, per_client)
                table.add(
                    label,
                    n,
                    len(run.latencies) + run.errors,
                    run.errors,
                    f"{run.wall_s:.1f}",
                    f"{len(run.latencies) / run.wall_s * 60:.1f}",
                    f"{run.audio_s / run.wall_s:.1f}",
                    f"{percentile(run.latencies, 50):.2f}",
                    f"{percentile(run.latencies, 95):.2f}",
                )
                print(table.rows[-1], flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--clips", default="jfk,30s,pyannote")
    parser.add_argument("--machine", default=None)
    parser.add_argument("--out", type=Path, default=OUT / "ray_replicas.md")
    args = parser.parse_args()
    started_load = loadavg()
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    log = OUT / "ray_replicas.log"
    clips = [clip(n) for n in args.clips.split(",")]
    clients = [int(n) for n in args.clients.split(",")]
    table = throughput(args.model, clips, clients, args.per_client, cache, log)
    report = "\n\n".join([header(args.machine, started_load), table.markdown()])
    args.out.write_text(report + "\n")
    args.out.with_suffix(".json").write_text(json.dumps([table.as_dicts()], indent=1))
    print(report)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
