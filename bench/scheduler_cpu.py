"""The window scheduler on a CPU, through the service over HTTP: throughput and latency with
1, 2, 4, 8 concurrent clients, scheduler on vs off, and word error rate vs the sequential
decoder on the bench clips.

  cd bench && ../.venv/bin/python scheduler_cpu.py --model tiny.en --clients 1,2,4,8

"Off" is MAX_BATCH_WINDOWS=0 with GPU_CONCURRENCY=1: each request decodes its own windows
in turn with the sequential decoder, one request at a time (the service's behaviour before
the scheduler). "On" is the default: every request in progress (MAX_ACTIVE_REQUESTS) submits
its windows and one engine call decodes up to MAX_BATCH_WINDOWS of them.
Clients send short clips back to back, each client cycling through the same clip list.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from clips import OUT, Clip, clip
from load import closed_loop
from report import Table, header, loadavg, percentile
from service import Service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_tools import wer

CONFIGS = {
    "off (MAX_BATCH_WINDOWS=0, sequential)": {"MAX_BATCH_WINDOWS": "0", "GPU_CONCURRENCY": "1"},
    "on (MAX_BATCH_WINDOWS=16)": {"MAX_BATCH_WINDOWS": "16", "MAX_ACTIVE_REQUESTS": "16"},
}


def throughput(
    model: str, clips: list[Clip], clients: list[int], per_client: int, cache: Path, log: Path
) -> Table:
    table = Table(
        f"Throughput and latency ({model}, clips {', '.join(c.name for c in clips)}, "
        f"{per_client} requests per client)",
        ["scheduler", "clients", "requests", "errors", "wall s", "req/min", "p50 s", "p95 s"],
    )
    for label, env in CONFIGS.items():
        with Service(model, cache, log, env) as service:
            for c in clips:
                service.request(c)  # warm-up: first-call set-up of every clip's shape
            for n in clients:
                run = closed_loop(service, clips, n, per_client)
                table.add(
                    label,
                    n,
                    len(run.latencies) + run.errors,
                    run.errors,
                    f"{run.wall_s:.1f}",
                    f"{len(run.latencies) / run.wall_s * 60:.1f}",
                    f"{percentile(run.latencies, 50):.2f}",
                    f"{percentile(run.latencies, 95):.2f}",
                )
    return table


def quality(model: str, clips: list[Clip], cache: Path, log: Path) -> Table:
    table = Table(
        f"Word error rate vs the script ({model}), scheduler on vs the sequential decoder",
        [
            "clip",
            "WER off (sequential)",
            "WER on (scheduler)",
            "difference (points)",
            "wall off s",
            "wall on s",
        ],
    )
    texts: dict[str, dict[str, tuple[float, str]]] = {}
    for label, env in CONFIGS.items():
        with Service(model, cache, log, env) as service:
            for c in clips:
                texts.setdefault(c.name, {})[label] = service.request(c)
    off, on = CONFIGS
    for c in clips:
        (wall_off, text_off), (wall_on, text_on) = texts[c.name][off], texts[c.name][on]
        a, b = wer(c.reference, text_off) * 100, wer(c.reference, text_on) * 100
        table.add(
            c.name, f"{a:.2f}%", f"{b:.2f}%", f"{b - a:+.2f}", f"{wall_off:.1f}", f"{wall_on:.1f}"
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--per-client", type=int, default=6)
    parser.add_argument("--load-clips", default="jfk,30s,pyannote")
    parser.add_argument("--wer-clips", default="jfk,30s,pyannote,10min,30min")
    parser.add_argument("--sections", default="throughput,wer")
    parser.add_argument("--machine", default=None)
    parser.add_argument("--out", type=Path, default=OUT / "scheduler_cpu.md")
    args = parser.parse_args()
    started_load = loadavg()
    sections = args.sections.split(",")
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    log = OUT / "scheduler_cpu.log"
    tables = []
    if "throughput" in sections:
        clips = [clip(n) for n in args.load_clips.split(",")]
        clients = [int(n) for n in args.clients.split(",")]
        tables.append(throughput(args.model, clips, clients, args.per_client, cache, log))
        print(tables[-1].markdown(), flush=True)
    if "wer" in sections:
        clips = [clip(n) for n in args.wer_clips.split(",")]
        tables.append(quality(args.model, clips, cache, log))
        print(tables[-1].markdown(), flush=True)
    report = "\n\n".join([header(args.machine, started_load), *(t.markdown() for t in tables)])
    args.out.write_text(report + "\n")
    args.out.with_suffix(".json").write_text(json.dumps([t.as_dicts() for t in tables], indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
