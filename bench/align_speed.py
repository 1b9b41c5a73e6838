"""How fast PocketSphinx alignment (app/alignment/phonetic.py) runs, alone and with several
worker processes at once: the CPU bound it puts on English requests with word times.

  prepare: the development set's wide-band files (bench/diar_devset.py) transcribed by the
           service with ALIGNMENT=dtw (Whisper's own word times, the aligner's input), saved
           with their 16 kHz samples in one .npz (so the GPU machine, which has neither the
           models nor a decoder, can run the second step)
  run:     every file aligned in each of P processes at once, for each P; prints minutes of
           audio aligned per second of wall time in all, and per process. Then the files
           joined into one recording, cut into the service's spans of at most
           PHONETIC_SPAN_MS and spread over P processes (as app/pipeline/align.py does with
           the CPU workers): how long one long recording waits for its word times

  cd bench && ../.venv/bin/python align_speed.py prepare --out out/align_speed.npz
  cd bench && ../.venv/bin/python align_speed.py run --data out/align_speed.npz --processes 1,2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.alignment.phonetic import AlignedWords, align_words  # noqa: E402
from app.domain import Word  # noqa: E402
from app.pipeline.pcm import PcmFile  # noqa: E402

PHONETIC_SPAN_MS = 120_000  # app/pipeline/align.py's (importing it needs the whole app)


def _align_span(words: list[Word], pcm: PcmFile, first: int, last: int) -> AlignedWords:
    """app/pipeline/align.py's align_pcm_span, for the same reason."""
    return align_words(words, pcm.read_int16(first, last))


def prepare(out: Path) -> None:
    from clips import read_mono_16k
    from diar_devset import development_set
    from service import Service

    files = [f for f in development_set() if not f.name.endswith("-phone")]
    arrays: dict[str, np.ndarray] = {}
    words: dict[str, list[list[Any]]] = {}
    env = {"ALIGNMENT": "dtw", "HF_HUB_OFFLINE": "1"}
    log = out.parent / "align-speed-service.log"
    with Service("base", out.parent / "cache", log, env) as service:
        for file in files:
            with file.path.open("rb") as f:
                response = service.client.post(
                    "/asr",
                    params={
                        "output": "json",
                        "model": "base",
                        "language": "en",
                        "diarize": "false",
                        "word_timestamps": "true",
                    },
                    files={"audio_file": (file.path.name, f)},
                )
            response.raise_for_status()
            body = response.json()
            assert body["word_timestamps"] == "whisper-dtw", body["word_timestamps"]
            words[file.name] = [
                [round(w["start"] * 1000), round(w["end"] * 1000), " " + w["word"]]
                for s in body["segments"]
                for w in s["words"]
            ]
            arrays[file.name] = read_mono_16k(file.path)
    payload: dict[str, Any] = {"words": json.dumps(words), **arrays}
    np.savez_compressed(out, **payload)
    minutes = sum(len(a) for a in arrays.values()) / 16000 / 60
    print(f"{len(arrays)} files, {minutes:.1f} min of audio -> {out}")


def _load(data: Path) -> tuple[dict[str, np.ndarray], dict[str, list[Word]]]:
    with np.load(data) as npz:
        raw = json.loads(str(npz["words"]))
        arrays = {name: npz[name] for name in raw}
    words = {name: [Word(a, b, text, 0.9) for a, b, text in ws] for name, ws in raw.items()}
    return arrays, words


def _align_all(data: Path) -> tuple[float, int, int]:
    """One worker: every file once; (seconds, stretches, stretches kept on Whisper's)."""
    arrays, words = _load(data)
    align_words(words[next(iter(words))][:5], next(iter(arrays.values())))  # load the model
    started = time.perf_counter()
    stretches = kept = 0
    for name, samples in arrays.items():
        aligned = align_words(words[name], samples)
        stretches, kept = stretches + aligned.stretches, kept + aligned.kept_whisper
    return time.perf_counter() - started, stretches, kept


def run(data: Path, processes: list[int]) -> None:
    arrays, _ = _load(data)
    minutes = sum(len(a) for a in arrays.values()) / 16000 / 60
    print(
        f"{platform.node()}, {os.cpu_count()} CPUs, {minutes:.1f} min of audio per worker, "
        f"pocketsphinx {_version()}"
    )
    print("| processes | wall s | audio aligned, min per s of wall | per process, x real time |")
    print("|---|---|---|---|")
    context = multiprocessing.get_context("spawn")
    for count in processes:
        with context.Pool(count) as pool:
            started = time.perf_counter()
            results = pool.map(_align_all, [data] * count)
            wall = time.perf_counter() - started
        each = [minutes * 60 / seconds for seconds, _, _ in results]
        kept = sum(k for _, _, k in results) // count
        print(
            f"| {count} | {wall:.1f} | {count * minutes / wall:.2f} | "
            f"{min(each):.0f}-{max(each):.0f} (kept on Whisper's: {kept} of "
            f"{results[0][1]} stretches) |",
            flush=True,
        )


def run_one_recording(data: Path, processes: list[int], work: Path) -> None:
    arrays, words = _load(data)
    pcm_path = work / "joined.pcm"
    joined: list[Word] = []
    offset_ms = 0
    with pcm_path.open("wb") as out:
        for name, samples in arrays.items():
            out.write(samples.astype("<i2").tobytes())
            joined += [Word(w.start_ms + offset_ms, w.end_ms + offset_ms, w.text, 0.9)
                       for w in words[name]]  # fmt: skip
            offset_ms += len(samples) * 1000 // 16000
    calls: list[tuple[list[Word], PcmFile, int, int]] = []
    first = 0
    while first < len(joined):
        last = first
        while last < len(joined) and joined[last].end_ms - joined[first].start_ms <= (
            PHONETIC_SPAN_MS
        ):
            last += 1
        start_ms = joined[first].start_ms
        span = [Word(w.start_ms - start_ms, w.end_ms - start_ms, w.text, 0.9)
                for w in joined[first:last]]  # fmt: skip
        end_ms = joined[last - 1].end_ms + 500
        calls.append((span, PcmFile(pcm_path), start_ms * 16, end_ms * 16))
        first = last
    minutes = offset_ms / 60_000
    print(f"\nOne recording of {minutes:.1f} min in {len(calls)} spans of <= 2 min:")
    print("| processes | wall s | x real time |")
    print("|---|---|---|")
    context = multiprocessing.get_context("spawn")
    for count in processes:
        with context.Pool(count) as pool:
            pool.map(_ready, range(count))
            started = time.perf_counter()
            pool.starmap(_align_span, calls)
            wall = time.perf_counter() - started
        print(f"| {count} | {wall:.1f} | {minutes * 60 / wall:.0f} |", flush=True)


def _ready(_: int) -> int:
    return os.getpid()


def _version() -> str:
    from importlib.metadata import version

    return version("pocketsphinx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "align_speed.npz")
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "align_speed.npz")
    r.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.out.resolve())
    else:
        counts = [int(p) for p in args.processes.split(",")]
        run(args.data, counts)
        with tempfile.TemporaryDirectory() as work:
            run_one_recording(args.data, counts, Path(work))


if __name__ == "__main__":
    main()
