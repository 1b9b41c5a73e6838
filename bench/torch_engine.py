"""The torch engine against CTranslate2 on one GPU: same windows, same words, and speed.

Three parts, one process, one GPU:
1. Real speech (a bench TTS clip tiled to `--minutes`, cut into 30 s windows), bundled
   model (`--model`, converted into transformers' layout): WER of the torch engine against
   CTranslate2 decoding the same windows greedily, and each engine's real-time factor
   (audio seconds / wall seconds) with `--batches` windows per batch (CTranslate2 through
   faster-whisper's BatchedInferencePipeline, greedy, no timestamps, the same windows).
2. Synthetic large-v3 and large-v3-turbo shapes with random weights (transformers'
   WhisperConfig of those models): encoder + decoder of the torch engine's WindowDecoder
   with exactly `--tokens` tokens per window, so every batch does the same work;
   RTFx = windows x 30 s / wall.
Times are medians of `--runs` runs after one warm-up, with the GPU synchronised.

    python3 bench/torch_engine.py --models-dir /tmp/gpu/stage/models --model base \
        --clip bench/out/clips/tts-10min.flac --minutes 30 --batches 16,64 --out $OUT
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from audio_tools import wer  # noqa: E402
from synthetic_service import random_whisper  # noqa: E402

from app.domain import Audio, DecodeOptions  # noqa: E402
from app.engines.torch_decoding import WindowDecoder, WindowTask  # noqa: E402
from app.engines.torch_engine import TorchEngine  # noqa: E402
from app.engines.torch_selection import Vocabulary  # noqa: E402
from app.pipeline.decode import decode_to_pcm  # noqa: E402

WINDOW_S = 30
SHAPES = ("large-v3", "large-v3-turbo")


def timed(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    result = work()  # warm-up: kernels, caches, allocator
    walls = []
    for _ in range(runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        result = work()
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls), result


def real_speech(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    pcm = decode_to_pcm(
        Path(args.clip), Path(args.out) / "clip.pcm", encoded=True, max_duration_s=10**6
    ).read()
    seconds = args.minutes * 60
    clip_seconds = len(pcm) // 16000
    if seconds % clip_seconds:
        raise SystemExit("--minutes must be a whole number of clips (the script is tiled)")
    script = Path(args.clip).with_suffix(".txt").read_text()
    audio = np.tile(pcm, seconds // clip_seconds)
    windows = [(float(s), float(min(s + WINDOW_S, seconds))) for s in range(0, seconds, WINDOW_S)]
    source = Path(args.models_dir) / args.model
    ct2 = WhisperModel(str(source), device="cuda", compute_type="float16")
    batched = BatchedInferencePipeline(ct2)
    engine = TorchEngine(Path(args.out) / "cache", "cuda", "float16", batch_size=16)
    ours = engine.load(args.model, source)
    options = DecodeOptions(language="en", beam_size=1, temperature=0.0)
    for batch in [int(b) for b in args.batches.split(",")]:
        ours._batch_size = batch
        wall, transcript = timed(lambda: ours.transcribe(Audio(audio), options, windows), args.runs)
        torch_text = " ".join(s.text for s in transcript.segments)

        def ct2_run(size: int = batch) -> str:
            segments, _ = batched.transcribe(
                audio,
                language="en",
                beam_size=1,
                temperature=0.0,
                without_timestamps=True,
                vad_filter=False,
                batch_size=size,
                clip_timestamps=[{"start": a, "end": b} for a, b in windows],
            )
            return " ".join(s.text for s in segments)

        ct2_wall, ct2_text = timed(ct2_run, args.runs)
        for engine_name, w in (("torch fp16 (this)", wall), ("CTranslate2 fp16", ct2_wall)):
            rows.append(
                {
                    "part": "real speech",
                    "model": args.model,
                    "engine": engine_name,
                    "batch": batch,
                    "windows": len(windows),
                    "wall_s": round(w, 3),
                    "rtfx": round(seconds / w),
                }
            )
        truth = " ".join([script] * (seconds // clip_seconds))
        rows.append(
            {
                "part": "agreement",
                "model": args.model,
                "batch": batch,
                "wer_torch_vs_ct2": round(wer(ct2_text, torch_text), 4),
                "wer_torch_vs_script": round(wer(truth, torch_text), 4),
                "wer_ct2_vs_script": round(wer(truth, ct2_text), 4),
            }
        )
        print(rows[-3:], flush=True)


def synthetic(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    for name in SHAPES:
        synthetic_shape(name, args, rows)
        torch.cuda.empty_cache()


def synthetic_shape(name: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    model = random_whisper(name, "cuda", torch.float16)
    prefix = (50258, 50259, 50360, 50364)  # sot, en, transcribe, notimestamps
    # No end-of-text (id -1 is never chosen): every window decodes exactly --tokens.
    vocabulary = Vocabulary(
        eot=-1,
        no_speech=50363,
        timestamp_begin=50365,
        no_timestamps=50364,
        blank=(),
        suppress=(50257,),
    )
    decoder = WindowDecoder(model, vocabulary, lambda tokens: "x" * len(tokens))
    decoder.max_positions = len(prefix) + args.tokens
    task = WindowTask(prefix, 0, (0.0,))
    for batch in [int(b) for b in args.synthetic_batches.split(",")]:
        mels = torch.randn(batch, 128, 3000, device="cuda")
        tasks = [task] * batch

        def everything(m: torch.Tensor = mels, t: list[WindowTask] = tasks) -> Any:
            return decoder.decode(decoder.encode(m), t)

        def encoder_only(m: torch.Tensor = mels) -> Any:
            return decoder.encode(m)

        wall, results = timed(everything, args.runs)
        assert all(len(r.tokens) == args.tokens for r in results)
        encoder_wall, _ = timed(encoder_only, args.runs)
        rows.append(
            {
                "part": "synthetic",
                "model": name,
                "engine": "torch fp16 (this)",
                "batch": batch,
                "tokens_per_window": args.tokens,
                "wall_s": round(wall, 3),
                "rtfx": round(batch * WINDOW_S / wall),
                "encoder_rtfx": round(batch * WINDOW_S / encoder_wall),
            }
        )
        print(rows[-1], flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--model", default="base")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--synthetic-batches", default="16,64,128")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default="real,synthetic")
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    header = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "commit": (ROOT / "COMMIT").read_text().strip() if (ROOT / "COMMIT").exists() else "?",
    }
    import transformers

    header["transformers"] = transformers.__version__
    print(header, flush=True)
    parts = args.parts.split(",")
    try:
        if "real" in parts:
            real_speech(args, rows)
        if "synthetic" in parts:
            synthetic(args, rows)
    finally:
        (Path(args.out) / "torch_engine.json").write_text(
            json.dumps({"header": header, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
