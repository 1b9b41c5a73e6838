"""Wall time of the MLX engine against CTranslate2 (int8, float32) on one 30 s clip, CPU.

    uv run --frozen python bench/mlx_vs_ctranslate2.py [--runs 5] [--models tiny.en base]

The clip is pyannote.audio's 30 s two-speaker sample. Every engine decodes greedily (beam 1:
mlx-whisper has no beam search) with VAD, language detection and word timestamps, as a
default request does. Each cell is the median of --runs timed runs after one warm-up run.
Models come from the bundled packages; MLX conversions go to --cache-dir/mlx/.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app.engines.mlx_engine import MLXEngine, prefer_openblas  # noqa: E402

if "--reference-blas" in sys.argv:  # what MLX does without OpenBLAS
    import mlx.core  # noqa: F401  (imported first, MLX stays on its bundled BLAS)
FAST_BLAS = prefer_openblas()  # before anything else imports mlx.core

from audio_tools import pyannote_sample, wer  # noqa: E402

from app.config import Settings  # noqa: E402
from app.domain import Audio, DecodeOptions  # noqa: E402
from app.engines.ctranslate2_engine import CTranslate2Engine  # noqa: E402
from app.models.ct2_to_mlx import convert  # noqa: E402
from app.models.hub import HubClient  # noqa: E402
from app.models.registry import ModelRegistry  # noqa: E402
from app.pipeline.decode import decode_file  # noqa: E402

OPTIONS = DecodeOptions(beam_size=1, word_timestamps=True)


def timed_runs(model: Any, audio: Audio, runs: int) -> tuple[list[float], str]:
    model.transcribe(audio, OPTIONS)  # warm-up: caches, numba, first allocations
    times, text = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        text = model.transcribe(audio, OPTIONS).text
        times.append(time.perf_counter() - started)
    return times, text


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {platform.system()} {platform.release()}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = " (with uncommitted changes)" if git("status", "--porcelain").strip() else ""
    return git("rev-parse", "--short", "HEAD").strip() + dirty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--cache-dir", type=Path, default=Settings().cache_dir)
    parser.add_argument(
        "--reference-blas", action="store_true", help="leave MLX on its bundled reference BLAS"
    )
    args = parser.parse_args()

    settings = Settings(_env_file=None, cache_dir=args.cache_dir, hf_hub_offline=True)
    registry = ModelRegistry(settings, HubClient(settings))
    wav, stm = pyannote_sample()
    audio = decode_file(wav)
    reference = " ".join(ln.split(maxsplit=5)[5] for ln in stm.read_text().splitlines())
    mlx = MLXEngine(args.cache_dir)  # Linux: cpu, float32; Apple Silicon: gpu, float16
    slow_blas = ", reference BLAS" if mlx.device == "cpu" and not FAST_BLAS else ""
    engines: list[tuple[str, Any]] = [
        (f"MLX {mlx.compute_type} ({mlx.device}{slow_blas})", mlx),
        ("CTranslate2 int8", CTranslate2Engine("cpu", "int8", 1, 0, 1)),
        ("CTranslate2 float32", CTranslate2Engine("cpu", "float32", 1, 0, 1)),
    ]
    import ctranslate2
    import mlx.core as mx

    print(f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {machine()}")
    print(f"commit: {commit()}")
    mlx_version = getattr(mx, "__version__", "?")
    print(f"mlx {mlx_version} (OpenBLAS: {FAST_BLAS}), ctranslate2 {ctranslate2.__version__}")
    print(f"clip: {wav.name}, {audio.duration_ms / 1000:.1f} s; median of {args.runs} runs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| model | engine | load s | median s | min s | x real time | WER vs reference |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        path = registry.resolve(name).path
        assert path is not None, f"{name} is not bundled here"
        convert(path, args.cache_dir, name)  # once; not part of the load time below
        for label, engine in engines:
            started = time.perf_counter()
            model = engine.load(name, path)
            load_s = time.perf_counter() - started
            times, text = timed_runs(model, audio, args.runs)
            model.unload()
            median = statistics.median(times)
            print(
                f"| {name} | {label} | {load_s:.1f} | {median:.2f} | {min(times):.2f} "
                f"| {audio.duration_ms / 1000 / median:.1f} | {wer(reference, text):.3f} |",
                flush=True,
            )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
