"""One GPU, many clients: the service over HTTP beside its peers on the same GPU and clips.

  real       the bundled model (`--model`, real speech, `--clip`): the service with each
             `--engines` (torch, ctranslate2) under 1, 4, 16, 64 concurrent clients; then
             faster-whisper's BatchedInferencePipeline and transformers' ASR pipeline (the
             insanely-fast-whisper recipe: fp16, SDPA, chunk_length_s=30, batch 24) on the
             same clip, in-process.
  synthetic  large-v3 and turbo shapes with random weights, exactly `--tokens` tokens per
             window (bench/synthetic_service.py), under 16 and 64 clients; then transformers'
             plain `generate` with the same shape, weights and token count, batched.

Throughput: audio seconds / wall seconds over all clients (RTFx), and windows x 30 s / wall
(the issue's unit). Every client posts the clip `--requests` times back to back.

  python3 bench/gpu_http.py --part real --models-dir /tmp/gpu/stage/models \
      --clip bench/out/clips/tts-5min.flac --out $OUT
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from report import concurrently, percentile
from service import Service

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from audio_tools import wer  # noqa: E402
from live_server import LiveServer  # noqa: E402

WINDOW_S = 30


class SyntheticServer(LiveServer):
    def __init__(self, log: Path, shape: str, tokens: int, models_dir: Path) -> None:
        self.args = ["--shape", shape, "--tokens", str(tokens), "--models-dir", str(models_dir)]
        super().__init__(log, {})

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(ROOT / "bench" / "synthetic_service.py"), *self.args]
        return subprocess.Popen(
            [*command, "--port", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT
        )


def show(row: dict[str, Any]) -> None:
    print({k: v for k, v in row.items() if k != "timeline"}, flush=True)


def load(
    url: str,
    clip: Path,
    clients: int,
    requests: int,
    duration_s: float,
    profile: tuple[str, int, Path] | None = None,
) -> dict[str, Any]:
    """`clients` threads, each posting `clip` `requests` times; the service's scheduler
    counters are read before and after. `profile` = (py-spy, server pid, output): the
    server's GIL holders sampled for the first 20 s of the load (collapsed stacks)."""
    before = httpx.get(f"{url}/queue-metrics").json()["scheduler"] or {}
    latencies: list[float] = []
    errors: list[str] = []
    data = clip.read_bytes()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=3600) as http:
            for _ in range(requests):
                started = time.perf_counter()
                r = http.post(
                    "/asr",
                    params={
                        **{"output": "json", "language": "en", "model": "base"},
                        **{"diarize": "false", "word_timestamps": "false"},
                    },
                    files={"audio_file": (clip.name, data)},
                )
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(r.text[:200])

    spy = None
    if profile is not None:
        binary, pid, output = profile
        options = ["--duration", "20", "--rate", "50", "--format", "raw", "--subprocesses", "--gil"]
        spy = subprocess.Popen(
            [binary, "record", "--pid", str(pid), *options, "--nonblocking", "-o", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
    timeline: list[dict[str, float]] = []
    stop = threading.Event()

    def sample() -> None:
        """Where the wall time goes: the scheduler's counters every half second."""
        started = time.perf_counter()
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.wait(0.5):
                now = http.get("/queue-metrics").json()["scheduler"] or {}
                timeline.append(
                    {
                        "t": round(time.perf_counter() - started, 2),
                        "queued": now.get("queued_windows", 0),
                        "windows": now.get("windows", 0) - before.get("windows", 0),
                        "engine_s": round(now.get("engine_seconds", 0.0) - engine_before, 2),
                        "idle_s": round(now.get("idle_seconds", 0.0) - idle_before, 2),
                    }
                )

    engine_before = before.get("engine_seconds", 0.0)
    idle_before = before.get("idle_seconds", 0.0)
    sampler = threading.Thread(target=sample)
    sampler.start()
    wall = concurrently([client] * clients)
    stop.set()
    sampler.join()
    if spy is not None:
        spy.wait(timeout=60)
    after = httpx.get(f"{url}/queue-metrics").json()["scheduler"] or {}
    windows = after.get("windows", 0) - before.get("windows", 0)
    batches = after.get("batches", 0) - before.get("batches", 0)
    engine_s = after.get("engine_seconds", 0.0) - before.get("engine_seconds", 0.0)
    idle_s = after.get("idle_seconds", 0.0) - before.get("idle_seconds", 0.0)
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 2),
        "rtfx_audio": round(len(latencies) * duration_s / wall),
        "windows": windows,
        "rtfx_windows": round(windows * WINDOW_S / wall),
        "mean_batch": round(windows / batches, 1) if batches else None,
        "engine_busy": f"{engine_s / wall:.0%}",
        "scheduler_idle": f"{idle_s / wall:.0%}",  # waited with no window queued
        "engine_s_per_batch": round(engine_s / batches, 3) if batches else None,
        "p50_s": round(percentile(latencies, 50), 2) if latencies else None,
        "p95_s": round(percentile(latencies, 95), 2) if latencies else None,
        "timeline": timeline,
    }


def _profile(
    args: argparse.Namespace, pid: int, tag: str, clients: int
) -> tuple[str, int, Path] | None:
    """Profile the run with the most clients, when `--py-spy` names the profiler."""
    most = max(int(c) for c in args.clients.split(","))
    if not args.py_spy or clients != most:
        return None
    return args.py_spy, pid, args.out / f"profile-{tag}.txt"


def duration(clip: Path) -> float:
    from app.pipeline.decode import decode_to_pcm

    return decode_to_pcm(clip, Path("/tmp/gpu-http-clip.pcm")).duration_ms / 1000


def real(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    seconds = duration(args.clip)
    for engine in args.engines.split(","):
        env = {
            "ASR_ENGINE": engine,
            "DEVICE": "cuda",
            "MODELS_DIR": str(args.models_dir),
            "MAX_BATCH_WINDOWS": str(args.batch),
            "MAX_ACTIVE_REQUESTS": "64",
            "MAX_QUEUE_SIZE": "256",
            "DIARIZATION_MODEL": "none",
        }
        with Service(args.model, args.out / "cache", args.out / f"service-{engine}.log", env) as s:
            _, text = s.request(_clip(args.clip, seconds))  # warm-up, scored
            script = args.clip.with_suffix(".txt")
            if script.is_file():
                score = round(wer(script.read_text(), text), 4)
                rows.append({"part": "real", "runner": f"service, {engine}", "wer": score})
                show(rows[-1])
            for clients in [int(c) for c in args.clients.split(",")]:
                spy = _profile(args, s.process.pid, f"real-{engine}-{clients}", clients)
                row = load(s.url, args.clip, clients, args.requests, seconds, spy)
                rows.append({"part": "real", "runner": f"service, {engine}", **row})
                show(rows[-1])
    if args.peers:
        peers_real(args, seconds, rows)


def _clip(path: Path, seconds: float) -> Any:
    from clips import Clip

    return Clip(path.stem, path, "", seconds)


def timed(work: Any, runs: int = 2) -> float:
    import torch

    work()
    walls = []
    for _ in range(runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - started)
    return min(walls)


def peers_real(args: argparse.Namespace, seconds: float, rows: list[dict[str, Any]]) -> None:
    from app.pipeline.decode import decode_to_pcm

    audio = decode_to_pcm(args.clip, args.out / "clip.pcm").read()
    for name, run in (("faster-whisper", faster_whisper_peer), ("transformers", pipeline_peer)):
        try:
            run(args, audio, seconds, rows)
        except Exception as exc:  # one peer failing must not lose the others' numbers
            rows.append({"part": "real", "runner": name, "error": repr(exc)[:300]})
            show(rows[-1])


def faster_whisper_peer(
    args: argparse.Namespace, audio: Any, seconds: float, rows: list[dict[str, Any]]
) -> None:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    source = args.models_dir / args.model
    batched = BatchedInferencePipeline(WhisperModel(str(source), "cuda", compute_type="float16"))
    for size in (16, 64):

        def fw(size: int = size) -> None:
            segments, _ = batched.transcribe(audio, language="en", beam_size=1, batch_size=size)
            list(segments)

        wall = timed(fw)
        runner = f"faster-whisper BatchedInferencePipeline, bs={size}, greedy, its VAD"
        rows.append(
            {"part": "real", "runner": runner, "rtfx_audio": round(seconds / wall), "wall_s": wall}
        )
        show(rows[-1])


def pipeline_peer(
    args: argparse.Namespace, audio: Any, seconds: float, rows: list[dict[str, Any]]
) -> None:
    """insanely-fast-whisper's recipe: transformers' ASR pipeline, fp16, SDPA, 30 s chunks,
    batch 24 (the bundled model converted into transformers' layout)."""
    import torch
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
        pipeline,
    )

    from app.models.ct2_to_torch import convert

    folder = convert(args.models_dir / args.model, args.out / "cache", args.model)
    model = WhisperForConditionalGeneration.from_pretrained(
        folder, dtype=torch.float16, attn_implementation="sdpa"
    )
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), pad_token="<|endoftext|>"
    )
    features = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    asr = pipeline(
        "automatic-speech-recognition",
        model=model,
        tokenizer=tokenizer,
        feature_extractor=features,
        dtype=torch.float16,
        device="cuda:0",
    )

    def hf() -> None:
        asr(
            {"raw": audio.copy(), "sampling_rate": 16000},
            chunk_length_s=30,
            batch_size=24,
            generate_kwargs={"language": "en"},
        )

    wall = timed(hf)
    runner = "transformers pipeline (insanely-fast-whisper recipe), bs=24, fp16, sdpa"
    rows.append(
        {"part": "real", "runner": runner, "rtfx_audio": round(seconds / wall), "wall_s": wall}
    )
    show(rows[-1])


def synthetic(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import torch

    seconds = duration(args.clip)
    for shape in args.shapes.split(","):
        log = args.out / f"synthetic-{shape}.log"
        server = SyntheticServer(log, shape, args.tokens, args.models_dir)
        try:
            server.wait_ready(600)
            load(server.url, args.clip, 1, 1, seconds)  # warm-up
            for clients in [int(c) for c in args.clients.split(",")]:
                spy = _profile(args, server.process.pid, f"{shape}-{clients}", clients)
                row = load(server.url, args.clip, clients, args.requests, seconds, spy)
                rows.append(
                    {
                        "part": "synthetic",
                        "shape": shape,
                        "runner": "service, torch",
                        "tokens": args.tokens,
                        **row,
                    }
                )
                show(rows[-1])
        finally:
            server.stop()
        if not args.peers:
            continue
        try:
            peers_synthetic(args, shape, rows)
        except Exception as exc:  # keep the service's numbers
            rows.append({"part": "synthetic", "shape": shape, "error": repr(exc)[:300]})
            show(rows[-1])
        torch.cuda.empty_cache()


def peers_synthetic(args: argparse.Namespace, shape: str, rows: list[dict[str, Any]]) -> None:
    import torch
    from synthetic_service import random_whisper

    model = random_whisper(shape, "cuda", torch.float16)
    for size in (16, 64, 128):
        features = torch.randn(size, 128, 3000, device="cuda", dtype=torch.float16)

        def generate(f: Any = features) -> None:
            model.generate(
                f, min_new_tokens=args.tokens, max_new_tokens=args.tokens, do_sample=False
            )

        wall = timed(generate, runs=1)
        rows.append(
            {
                "part": "synthetic",
                "shape": shape,
                "tokens": args.tokens,
                "runner": f"transformers generate, bs={size}",
                "rtfx_windows": round(size * WINDOW_S / wall),
                "wall_s": round(wall, 2),
            }
        )
        show(rows[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("real", "synthetic"), required=True)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--model", default="base")
    parser.add_argument("--engines", default="torch,ctranslate2")
    parser.add_argument("--shapes", default="large-v3,large-v3-turbo")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--requests", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--py-spy", default="", help="py-spy binary: profile the largest load")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    try:
        (real if args.part == "real" else synthetic)(args, rows)
    finally:
        path = args.out / f"gpu_http_{args.part}.json"
        path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
