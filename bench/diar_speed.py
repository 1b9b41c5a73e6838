"""The diarization stage alone, in-process: seconds of work per minute of audio, one request
at a time beside N requests at once through the network batcher, on this machine's CPU or
GPU. Each row is one pass over the same files in the same run.

  cd bench && ../.venv/bin/python diar_speed.py --files out/diar-real/dev-*.flac --requests 1,8
  (on the GPU machine: python3 diar_speed.py --device cuda ...; bench/gpu/diar_kit.sh)

Rows: `requests` = DIARIZATION_BATCH_REQUESTS (1: every request wholly on the torch thread,
as on the CPU; N: N requests at once, each in its own thread, their network calls merged on
the torch thread); `networks` = how the CPU runs them (onnx: both through ONNX Runtime;
campplus-onnx: CAM++ through ONNX Runtime, the segmentation network in torch, as before it
had an export; eager: both in torch), or on CUDA how CAM++ runs (DIARIZATION_CUDA_GRAPHS:
tf32 / bf16 / fp32 = replayed from CUDA graphs, crops trimmed to buckets; off = eager);
`s / min` = wall time over minutes of audio (the aggregate rate), `x real time` its inverse
times 60; `speakers` = speakers found per file, in file order.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load(path: Path) -> np.ndarray:
    """16 kHz mono float32 from an audio file, or from a .npy of 16 kHz int16 samples (what
    the GPU kit carries: that machine has no soundfile)."""
    if path.suffix == ".npy":
        return (np.load(path).astype(np.float32) / 32768.0).astype(np.float32)
    import soundfile as sf
    import torch
    import torchaudio

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != 16000:
        mono = torchaudio.functional.resample(torch.from_numpy(mono), rate, 16000).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def one_pass(
    device: str, requests: int, kind: str, audio: list[np.ndarray], profile: bool = False
) -> dict:
    import app.diarization.onnx_cpu as onnx_cpu
    from app.compute_thread import ComputeThread, own_cuda_stream
    from app.config import Settings
    from app.diarization.service import DiarizationService
    from app.domain import Audio, SpeakerLimits
    from app.models.cache import ModelCache
    from app.models.hub import HubClient
    from app.scheduler.network_batcher import NetworkBatcher

    eager = kind == "eager" and device == "cpu"
    # campplus-onnx: CAM++ through ONNX Runtime, the segmentation network in torch eager
    # (the CPU path before the segmentation network had its own export)
    real_fast_segmentation = onnx_cpu.fast_segmentation
    if kind == "campplus-onnx":
        onnx_cpu.fast_segmentation = lambda inference, cache_dir: False
    calls: list[int] = []
    cache = Path(tempfile.mkdtemp()) if eager else ROOT / "bench" / "out" / "cache"
    graphs = kind if device == "cuda" else "off"
    settings = Settings(
        _env_file=None,
        cache_dir=cache,
        hf_hub_offline=True,
        diarization_batch_requests=requests,
        diarization_cuda_graphs=graphs,
    )
    thread = ComputeThread("torch", own_cuda_stream if device == "cuda" else None)
    batcher = NetworkBatcher(thread, lambda n, rows: calls.append(n))
    service = DiarizationService(settings, HubClient(settings), ModelCache(), device, batcher)
    if eager:  # no ONNX export in a fresh folder: make it fail, torch eager remains
        (cache / "diarization").write_text("")
    thread.run(service.preload)
    onnx_cpu.fast_segmentation = real_fast_segmentation

    def diarize(samples: np.ndarray) -> int:
        def work() -> int:
            result = service.diarize(Audio(samples, 16000), SpeakerLimits())
            found = result.diarization
            if found is None:  # the stage degraded: no row is worth printing
                raise SystemExit(f"diarization failed: {result.notes}")
            return len({t.speaker for t in found.turns})

        return thread.run(work) if requests == 1 else work()

    diarize(audio[0][: 16000 * 20])  # warm-up (kernels, allocator, ONNX sessions)
    calls.clear()
    if profile:  # one request at a time in this thread, under cProfile: where time goes
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for samples in audio:
            service.diarize(Audio(samples, 16000), SpeakerLimits())
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    started = time.perf_counter()
    with ThreadPoolExecutor(requests) as pool:
        speakers = list(pool.map(diarize, audio))
    wall = time.perf_counter() - started
    thread.close()
    minutes = sum(len(a) for a in audio) / 16000 / 60
    return {
        "wall": wall,
        "s_per_min": wall / minutes,
        "speakers": speakers,
        "calls": float(np.mean(calls)) if calls else 1.0,
    }


def machine(device: str) -> str:
    if device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    return f"{platform.node()} ({os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", nargs="+", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", default="1", help="comma-separated request counts")
    parser.add_argument(
        "--networks",
        default="onnx",
        help="comma-separated; CPU: onnx, campplus-onnx (segmentation in torch), eager; "
        "CUDA (DIARIZATION_CUDA_GRAPHS): tf32, bf16, fp32, off (default tf32,off)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="each file this many times")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", action="store_true", help="cProfile one request at a time")
    args = parser.parse_args()
    audio = [load(p) for p in args.files] * args.repeat
    minutes = sum(len(a) for a in audio) / 16000 / 60
    commit = (
        os.environ.get("BENCH_COMMIT")
        or subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    lines = [
        f"Diarization stage alone, commit `{commit}`, {machine(args.device)}, device "
        f"{args.device}; {len(audio)} requests, {minutes:.1f} min of audio.",
        "",
        "| requests at once | networks | wall s | s / min | x real time | requests per "
        "network call | speakers |",
        "|---|---|---|---|---|---|---|",
    ]
    networks = args.networks.split(",")
    if args.device == "cuda" and args.networks == "onnx":
        networks = ["tf32", "off"]
    for kind in networks:
        for requests in (int(n) for n in args.requests.split(",")):
            row = one_pass(args.device, requests, kind, audio, args.profile)
            lines.append(
                f"| {requests} | {kind} | {row['wall']:.1f} | {row['s_per_min']:.3f} | "
                f"{60 / row['s_per_min']:.0f} | {row['calls']:.1f} | "
                f"{' '.join(map(str, row['speakers']))} |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
