"""Where one request's memory and CPU go: the server's resident memory, CPU time and page
faults sampled from /proc while it serves one /asr request, summed between its log lines.

Each row is the stretch of time that ends with one server log line (the pipeline logs each
stage and each diarization span as it finishes): the highest RSS in it, the CPU seconds
spent (user and system, over all threads), and the minor page faults (fresh pages touched;
many of them in a stretch whose work is the same as another's means allocator churn).

    uv run --frozen python bench/timeline.py --model base --clip 10min --diarize
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clips import OUT, tts_clip
from report import Table, header, loadavg
from service import Service

_TICK = os.sysconf("SC_CLK_TCK")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ (\S+): (.*)$")


@dataclass(frozen=True)
class Sample:
    at: float  # wall-clock seconds (time.time)
    rss_mib: float
    user_s: float  # CPU seconds in user mode, all threads
    system_s: float  # CPU seconds in the kernel (page faults, madvise, futex waits...)
    minor_faults: int


def sample(pid: int) -> Sample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    minor, user, system = int(fields[7]), int(fields[11]), int(fields[12])
    rss_pages = int(fields[21])
    return Sample(
        time.time(),
        rss_pages * os.sysconf("SC_PAGE_SIZE") / 1048576,
        user / _TICK,
        system / _TICK,
        minor,
    )


class Sampler(threading.Thread):
    def __init__(self, pid: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(sample(self.pid))
            self.done.wait(self.every_s)
        self.samples.append(sample(self.pid))


def log_marks(text: str, since: float) -> list[tuple[float, str]]:
    marks = []
    for line in text.splitlines():
        match = _LOG_TIME.match(line)
        if match is None or "faster_whisper" in match.group(2) or "httpx" in match.group(2):
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at >= since:
            marks.append((at, f"{match.group(2).rsplit('.', 1)[-1]}: {match.group(3)[:90]}"))
    return marks


def stretches(samples: list[Sample], marks: list[tuple[float, str]]) -> Table:
    table = Table(
        "Timeline of one request",
        [
            "until (s)",
            "log line",
            "peak RSS MiB",
            "wall s",
            "user s",
            "system s",
            "minor faults (k)",
        ],
    )
    start = samples[0].at
    edges = [*marks, (samples[-1].at, "(response sent)")]
    previous = samples[0]
    for at, text in edges:
        inside = [s for s in samples if previous.at <= s.at <= at] or [previous]
        last = inside[-1]
        table.add(
            f"{at - start:.1f}",
            text,
            f"{max(s.rss_mib for s in inside):.0f}",
            f"{last.at - previous.at:.1f}",
            f"{last.user_s - previous.user_s:.1f}",
            f"{last.system_s - previous.system_s:.1f}",
            f"{(last.minor_faults - previous.minor_faults) / 1000:.0f}",
        )
        previous = last
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--clip", default="10min", help="a bench TTS clip: 10min, 60min, 3h")
    parser.add_argument("--diarize", action="store_true")
    parser.add_argument("--every", type=float, default=0.2, help="sampling period, seconds")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args(argv)
    load = loadavg()
    clip = tts_clip(args.clip)
    env = {"MAX_FILE_SIZE_MB": "2048", "LOG_LEVEL": "INFO"}
    env |= dict(item.split("=", 1) for item in args.env)
    log = OUT / f"timeline-{args.model}-{args.clip}.log"
    log.unlink(missing_ok=True)
    with Service(args.model, OUT / "cache", log, env) as service:
        sampler = Sampler(service.process.pid, args.every)
        sampler.start()
        time.sleep(args.every * 2)
        with clip.path.open("rb") as f:
            response = service.client.post(
                "/asr",
                params={"model": args.model, "diarize": str(args.diarize).lower()},
                files={"audio_file": (clip.path.name, f)},
            )
        sampler.done.set()
        sampler.join()
        response.raise_for_status()
        marks = log_marks(service.logs(), sampler.samples[0].at)
    print(header(None, load))
    print(f"{args.model}, {args.clip}, diarize={args.diarize}, env={args.env}\n")
    print(stretches(sampler.samples, marks).markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
