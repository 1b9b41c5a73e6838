"""Where one engine call's time goes: log-mel, encoder, decoder and the rest, for a batch
of real-audio windows on a synthetic model (random weights, fixed token count).

    python3 bench/gpu/engine_breakdown.py MODELS_DIR CLIP [--shape S] [--batch N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch  # noqa: E402
from synthetic_service import SyntheticEngine  # noqa: E402

from app.domain import DecodeOptions  # noqa: E402
from app.engines.torch_audio import log_mel  # noqa: E402
from app.pipeline.decode import decode_to_pcm  # noqa: E402


def timed(work: Any) -> tuple[Any, float]:
    torch.cuda.synchronize()
    started = time.perf_counter()
    out = work()
    torch.cuda.synchronize()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", type=Path)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--shape", default="large-v3-turbo")
    parser.add_argument("--batch", type=int, default=116)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--compile", default="true", choices=("true", "false"))
    args = parser.parse_args()
    audio = decode_to_pcm(args.clip, Path("/tmp/breakdown.pcm")).read()
    step = 30 * 16000
    pieces = [audio[(k * step) % (len(audio) - step) :][:step] for k in range(args.batch)]
    cache = Path("/tmp/breakdown-cache")
    engine = SyntheticEngine(cache, args.shape, args.tokens, "cuda", args.compile == "true")
    model = engine.load("base", args.models / "base")
    options = DecodeOptions(language="en")
    from app.engines.base import SpeechWindow

    windows = [SpeechWindow(p, options) for p in pieces]
    for run in range(3):
        (mels, _), t_mel = timed(lambda: log_mel(pieces, model._filters))
        states, t_enc = timed(lambda m=mels: model._decoder.encode(m))
        tokenizer = model._tokenizer("transcribe", "en")
        tasks = [model._task(options, tokenizer)] * len(pieces)
        _, t_dec = timed(lambda s=states, t=tasks: model._decoder.decode(s, t))
        _, t_all = timed(lambda: model.decode_windows(windows))
        audio_s = args.batch * 30
        print(
            f"{args.shape} batch {args.batch} run {run}: log_mel {t_mel:.3f} s, encoder "
            f"{t_enc:.3f} s, decoder {t_dec:.3f} s, decode_windows {t_all:.3f} s "
            f"({audio_s / t_all:.0f}x; encoder alone {audio_s / t_enc:.0f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
