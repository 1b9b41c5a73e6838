"""Statistics and the printed report: what machine, which commit, and one Markdown table per
section (pasted as is into bench/RESULTS.md)."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from clips import ROOT


@dataclass
class Samples:
    """Repeated measurements of one quantity: the report gives the median and min-max."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, digits: int = 2) -> str:
        if len(self.values) < 2:
            return "-"
        return f"{min(self.values):.{digits}f}-{max(self.values):.{digits}f}"


def concurrently(work: list[Callable[[], object]]) -> float:
    """Run each callable on its own thread, all at once; the wall seconds until all end."""
    threads = [threading.Thread(target=w) for w in work]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        assert len(cells) == len(self.columns), (cells, self.columns)
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def as_dicts(self) -> list[dict[str, str]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def git_commit() -> str:
    """Short commit, `+dirty` when tracked files differ from it. BENCH_COMMIT stands in
    where the tree travelled without its .git (the lent GPU machine)."""
    commit = _git("rev-parse", "--short", "HEAD") or os.environ.get("BENCH_COMMIT", "unknown")
    diff = _git("diff", "HEAD")
    # Others may be editing the tree: name the exact uncommitted state by a hash of its diff.
    return commit + (f"+dirty({hashlib.sha1(diff.encode()).hexdigest()[:8]})" if diff else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    if not shutil.which("nvidia-smi"):
        return "none"
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().replace("\n", "; ") or "none"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def header(machine_label: str | None, started_load: str) -> str:
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; commit: {git_commit()}",
        f"- machine: {machine_label + '; ' if machine_label else ''}CPU {cpu_model()}, "
        f"{os.cpu_count()} cores, {memory_gib():.0f} GiB RAM; GPU: {gpu_name()}",
        f"- software: Python {platform.python_version()}, ctranslate2 {_version('ctranslate2')}, "
        f"faster-whisper {_version('faster-whisper')}, av {_version('av')}",
        f"- load average (1/5/15 min): {started_load} at start, {loadavg()} at end",
    ]
    return "\n".join(lines) + "\n"
