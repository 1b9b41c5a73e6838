"""Keep what the offline diarizer clusters: for every file of a set, the chunk-level
speaker embeddings (CAM++, the service's recipe) with the true speaker of each, so that
ways of counting speakers can be compared in seconds (bench/diar_count.py) instead of one
pipeline pass each.

  cd bench && ../.venv/bin/python diar_dump.py --set real-dev [--embedding ge2e]

Writes out/cache/diar-embeddings/<set>/<file>.npz: `embeddings` (n, 192) as clustering
receives them (filtered as pyannote filters them), `truth` (n,) the reference speaker
whose turns cover most of each local speaker's active frames (`purity`: that share).
The diarizer hears what the service's does: the VAD's speech regions, joined across
pauses under 10 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from diar_devset import DevFile, development_set, variant_set
from diar_forms import sample_forms
from diar_real import real_set
from diarization import ROOT

sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out" / "cache" / "diar-embeddings"

SETS = {
    "dev": development_set,
    "variants": variant_set,
    "forms": sample_forms,
    "real-dev": lambda: [f for f in real_set() if f.name.startswith("dev-")],
    "real-held": lambda: [f for f in real_set() if f.name.startswith("held-")],
}


def truth_of(
    file: DevFile, chunks: Any, frames: Any, active: np.ndarray, regions: list[Any]
) -> tuple:
    """(label, purity) per (chunk, local speaker): the reference speaker who talks during
    most of the local speaker's active frames. `regions`: the recording's stretches the
    diarizer heard, one after another (samples)."""
    lengths = np.array([r.end - r.start for r in regions]) / 16000
    heard_starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    starts = np.array([r.start for r in regions]) / 16000

    def recording_time(heard: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(heard_starts, heard, side="right") - 1, 0, len(starts) - 1)
        return starts[i] + heard - heard_starts[i]

    speakers = sorted({t.speaker for t in file.turns})
    num_chunks, num_frames, local = active.shape
    labels = np.full((num_chunks, local), -1)
    purity = np.zeros((num_chunks, local))
    for c in range(num_chunks):
        start = chunks[c].start
        heard = start + frames.start + frames.duration / 2 + frames.step * np.arange(num_frames)
        times = recording_time(heard)
        who = np.zeros((num_frames, len(speakers)))
        for t in file.turns:
            who[(times >= t.start) & (times < t.end), speakers.index(t.speaker)] = 1
        for s in range(local):
            on = active[c, :, s] > 0
            if on.sum() == 0:
                continue
            counts = who[on].sum(axis=0)
            if counts.sum() == 0:
                continue
            labels[c, s] = int(np.argmax(counts))
            purity[c, s] = counts.max() / on.sum()
    return labels, purity


def dump(files: list[DevFile], out: Path, embedding: str = "campplus") -> None:
    import torch

    from app.diarization.pipelines import build_offline
    from app.pipeline.decode import decode_to_pcm
    from app.pipeline.diarize import diarization_spans
    from app.pipeline.vad import speech_probabilities, speech_regions

    cache = ROOT / "bench" / "out" / "cache" / "diarization"
    pipeline = build_offline("cpu", embedding, cache_dir=cache, step=0.25)
    clustering = pipeline.clustering
    original = type(clustering).__call__
    seen: dict[str, Any] = {}

    def capture(self: Any, embeddings: Any, segmentations: Any = None, **kw: Any) -> Any:
        seen["embeddings"], seen["segmentations"] = embeddings.copy(), segmentations
        return original(self, embeddings, segmentations, **kw)

    type(clustering).__call__ = capture
    out.mkdir(parents=True, exist_ok=True)
    frames = pipeline._segmentation.model.receptive_field
    for file in files:
        pcm = decode_to_pcm(file.path, Path("/tmp/diar-dump.pcm"))
        samples = pcm.read()
        vad = speech_regions(speech_probabilities(pcm), pcm.samples)
        regions = [r for span in diarization_spans(vad) for r in span.regions]
        heard = np.concatenate([samples[r.start : r.end] for r in regions])
        pipeline({"waveform": torch.from_numpy(heard)[None], "sample_rate": 16000})
        segmentations = seen["segmentations"]
        train, chunk_idx, speaker_idx = clustering.filter_embeddings(
            seen["embeddings"], segmentations=segmentations
        )
        labels, purity = truth_of(
            file, segmentations.sliding_window, frames, segmentations.data, regions
        )
        np.savez(
            out / f"{file.name}.npz",
            embeddings=train,
            truth=labels[chunk_idx, speaker_idx],
            purity=purity[chunk_idx, speaker_idx],
            chunk=chunk_idx,
            speakers=file.speakers,
        )
        print(file.name, train.shape, file.speakers, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SETS), default="real-dev")
    parser.add_argument("--embedding", choices=("campplus", "ge2e"), default="campplus")
    parser.add_argument("--files", default="", help="comma-separated names; default all")
    args = parser.parse_args()
    files = SETS[args.set]()
    if args.files:
        files = [f for f in files if f.name in args.files.split(",")]
    suffix = "" if args.embedding == "campplus" else f"-{args.embedding}"
    dump(files, OUT / f"{args.set}{suffix}", args.embedding)


if __name__ == "__main__":
    main()
