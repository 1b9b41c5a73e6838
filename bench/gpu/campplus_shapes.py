"""CAM++ on a GPU: why a stretch of speech costs what it costs, and what makes it cheaper.

The diarizer embeds crops of 0.5-3 s (the middle 3 s of each speaker's speech in a chunk,
every turn, 2 s windows); crops of equal length share a call (no padding: CAM++'s
statistics pooling would average it in), so every new length is a new input shape. This
runs one set of crops cut from real recordings through each variant and prints seconds per
minute of crops and how far each variant's embeddings lie from exact fp32 (cosine
distance: the clustering's thresholds are 0.24-0.35 apart, so 1e-3 is harmless).

  python3 campplus_shapes.py CLIP.npy ... (int16 16 kHz; bench/gpu/diar_kit.sh carries them)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.diarization.campplus_cuda import GraphedCampPlus, bucket_frames
from app.diarization.campplus_embedding import _frames, _trimmed, fbank, load_campplus


def crops(clips: list[np.ndarray], count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        clip = clips[rng.integers(len(clips))]
        length = 48000 if rng.random() < 0.4 else int(rng.uniform(0.5, 3.0) * 16000)
        start = rng.integers(0, len(clip) - length)
        out.append(clip[start : start + length])
    return out


def run(model, feats: list[torch.Tensor], bucket: int, dtype, batch: int) -> np.ndarray:
    """Crops grouped by length (after trimming each to a multiple of `bucket` frames)."""
    if bucket > 1:
        feats = [f[(len(f) % bucket) // 2 :][: len(f) - len(f) % bucket] for f in feats]
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        groups.setdefault(len(f), []).append(i)
    out = np.zeros((len(feats), 192), dtype=np.float32)
    with (
        torch.inference_mode(),
        torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32),
    ):
        for group in groups.values():
            for start in range(0, len(group), batch):
                part = group[start : start + batch]
                x = torch.stack([feats[i] for i in part]).cuda(non_blocking=True)
                y = model(x).float()
                out[part] = torch.nn.functional.normalize(y, dim=1).cpu().numpy()
    return out


def main() -> None:
    clips = [np.load(p).astype(np.float32) / 32768 for p in sys.argv[1:]]
    pieces = crops(clips, 400)
    seconds = sum(len(p) for p in pieces) / 16000
    feats = [fbank(p) for p in pieces]
    print("features ready", flush=True)
    model = load_campplus("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    reference = run(model, feats, 1, torch.float32, 32)
    print(f"{len(pieces)} crops, {seconds / 60:.1f} min of speech, {torch.cuda.get_device_name()}")
    print("| variant | s / min of crops | shapes | cosine distance to exact fp32 (max, mean) |")
    print("|---|---|---|---|")
    variants = [
        ("as the diarizer ran it (fp32, TF32 off as pyannote sets it)", 1, torch.float32, 32, {}),
        ("TF32 on", 1, torch.float32, 32, {"tf32": True}),
        ("bf16, exact lengths", 1, torch.bfloat16, 32, {}),
        ("trimmed to 25 frames, batches of 256", 25, torch.float32, 256, {}),
    ]

    def timed(name, work, shapes: int) -> None:
        work()  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        got = work()
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        distance = 1 - np.sum(got * reference, axis=1)
        print(
            f"| {name} | {elapsed / (seconds / 60):.4f} | {shapes} | "
            f"{distance.max():.2e}, {distance.mean():.2e} |",
            flush=True,
        )

    for name, bucket, dtype, batch, flags in variants:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(
            flags.get("tf32")
        )
        torch.backends.cudnn.benchmark = bool(flags.get("benchmark"))
        shapes = len({len(f) - (len(f) % bucket if bucket > 1 else 0) for f in feats})
        timed(name, lambda b=bucket, d=dtype, n=batch: run(model, feats, b, d, n), shapes)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    # the service's CUDA path (app/diarization/campplus_cuda.py): crops trimmed to its
    # buckets before the filterbanks, replayed from CUDA graphs
    bucketed = [fbank(_trimmed(p, bucket_frames(_frames(len(p))))) for p in pieces]
    shapes = len({len(f) for f in bucketed})
    timed(
        "buckets, eager fp32 (what trimming alone moves)",
        lambda: run(model, bucketed, 1, torch.float32, 128),
        shapes,
    )
    for precision in ("fp32", "tf32", "bf16"):
        graphed = GraphedCampPlus(model, precision)
        started = time.perf_counter()
        graphed.warm()
        torch.cuda.synchronize()
        took = time.perf_counter() - started
        print(f"capture of {graphed.captured} graphs ({precision}): {took:.1f} s")
        timed(f"buckets, CUDA graphs, {precision}", lambda g=graphed: grouped(g, bucketed), shapes)


def grouped(network, feats: list[torch.Tensor]) -> np.ndarray:
    """As CampPlusEmbedding.embed_many calls it: one call per length, CPU in, CPU out."""
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        groups.setdefault(len(f), []).append(i)
    out = np.zeros((len(feats), 192), dtype=np.float32)
    for group in groups.values():
        y = network(torch.stack([feats[i] for i in group])).float()
        out[group] = torch.nn.functional.normalize(y, dim=1).numpy()
    return out


if __name__ == "__main__":
    main()
