"""Choose the offline diarizer by measurement: pyannote's SpeakerDiarization with each
embedding, clustering threshold, chunk step and smallest-cluster size over the whole
development set, scored on its own turns (DER, 0.25 s collar, overlap not scored) with
the speakers found and the seconds per minute of audio.

Embeddings are cached per (chunk, mask), so a threshold sweep costs one embedding pass per
(embedding, step); the first configuration of each pays it, and its time is the one to read
(the others show clustering time only: marked "cached").

  cd bench && ../.venv/bin/python diar_sweep.py --configs ge2e@0.45,campplus@0.6/0.5 \
      --out out/diar_sweep.md

A configuration is `embedding@threshold[/step[/min_cluster_size[/linkage]]]`; embedding is
ge2e, campplus or fused (both, concatenated), with `+c` for constrained assignment (two
speakers of one chunk never join one cluster) and `+r` for the service's turns (the
exclusive diarization, each turn reassigned to its nearest speaker; without it, the
pipeline's overlapping output is scored); linkage centroid (default), average, ..., or
`spectral` (centroid linkage cut at the count bench/spectral_count.py reads from the
affinity graph; the threshold then only seeds pyannote's walk to that cut).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from diar_devset import DevFile, development_set, variant_set
from diar_real import real_set
from diarization import ROOT, score

sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Config:
    embedding: str
    threshold: float
    step: float = 0.1
    min_cluster_size: int = 12
    method: str = "centroid"
    constrained: bool = False
    reassigned: bool = False

    @classmethod
    def parse(cls, text: str) -> Config:
        name, _, rest = text.partition("@")
        embedding, *flags = name.split("+")
        parts = rest.split("/")
        return cls(
            embedding,
            float(parts[0]),
            float(parts[1]) if len(parts) > 1 else 0.1,
            int(parts[2]) if len(parts) > 2 else 12,
            parts[3] if len(parts) > 3 else "centroid",
            "c" in flags,
            "r" in flags,
        )

    def __str__(self) -> str:
        method = "" if self.method == "centroid" else f"/{self.method}"
        name = self.embedding + "+c" * self.constrained + "+r" * self.reassigned
        return f"{name}@{self.threshold}/{self.step}/{self.min_cluster_size}{method}"


class CachedEmbedding:
    """pyannote's embedding interface in front of another, remembering each answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[bytes, np.ndarray] = {}
        self.sample_rate, self.metric = inner.sample_rate, inner.metric
        self.min_num_samples, self.dimension = inner.min_num_samples, inner.dimension

    def to(self, device: Any) -> CachedEmbedding:
        return self

    def __call__(self, waveforms: Any, masks: Any = None) -> np.ndarray:
        digest = hashlib.blake2b(waveforms.numpy().tobytes(), digest_size=16)
        if masks is not None:
            digest.update(masks.numpy().tobytes())
        key = digest.digest()
        if key not in self.cache:
            self.cache[key] = self.inner(waveforms, masks)
        return self.cache[key]


class FusedEmbedding:
    """Two embeddings side by side, each L2-normalised: cosine distance = the mean of the
    two cosine distances."""

    def __init__(self, first: Any, second: Any) -> None:
        self.parts = (first, second)
        self.sample_rate, self.metric = first.sample_rate, "cosine"
        self.min_num_samples = max(first.min_num_samples, second.min_num_samples)
        self.dimension = first.dimension + second.dimension

    def to(self, device: Any) -> FusedEmbedding:
        return self

    def __call__(self, waveforms: Any, masks: Any = None) -> np.ndarray:
        out = []
        for part in self.parts:
            v = np.asarray(part(waveforms, masks), dtype=np.float32)
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True) / np.sqrt(2))
        return np.concatenate(out, axis=1)


def embeddings() -> dict[str, Any]:
    from app.diarization.campplus_embedding import CampPlusEmbedding, load_campplus, onnx_runner
    from app.diarization.voice_embedding import PyannoteVoiceEmbedding, load_voice_encoder

    ge2e = CachedEmbedding(PyannoteVoiceEmbedding(load_voice_encoder()))
    model = load_campplus()
    onnx = onnx_runner(model, ROOT / "bench" / "out" / "cache" / "diarization")
    campplus = CachedEmbedding(CampPlusEmbedding(model, onnx))
    made = {"ge2e": ge2e, "campplus": campplus, "fused": FusedEmbedding(ge2e, campplus)}
    for seconds in (3, 5):  # CAM++ on the middle few seconds of each speaker's stretch
        cropped = CachedEmbedding(CampPlusEmbedding(model, onnx, longest_s=seconds))
        made[f"campplus{seconds}"] = cropped
        made[f"fused{seconds}"] = FusedEmbedding(ge2e, cropped)
    return made


def run(
    config: Config,
    files: list[DevFile],
    made: dict[str, Any],
    phase: float = 0.0,
    speech_only: bool = False,
) -> list[dict[str, Any]]:
    """`phase`: seconds of silence put before what the diarizer hears, so its 10 s chunks
    fall elsewhere on the speech (a recording's start is arbitrary; a choice that holds
    only on one grid is luck). `speech_only`: the diarizer hears what the service's does (the
    VAD's speech regions joined across pauses under 10 s), turns mapped back."""
    import torch

    from app.diarization.diarizer import Diarizer, SpeakerTurn
    from app.diarization.pipelines import build_offline
    from app.diarization.reassign import reassign_turns
    from app.domain import Audio, SpeakerLimits
    from app.pipeline.decode import decode_to_pcm
    from app.pipeline.diarize import diarization_spans, to_recording
    from app.pipeline.vad import SpeechRegion, speech_probabilities, speech_regions

    by_graph = config.method == "spectral"
    pipeline = build_offline("cpu", "ge2e", config.threshold, step=config.step)
    if by_graph:
        from spectral_count import CountedClustering

        pipeline.clustering = CountedClustering(by_graph=True)
    pipeline._embedding = made[config.embedding]
    pipeline.clustering.constrained_assignment = config.constrained
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {
                "method": "centroid" if by_graph else config.method,
                "min_cluster_size": config.min_cluster_size,
                "threshold": config.threshold,
            },
        }
    )
    name = f"{config} ~{phase}" + (" speech" if speech_only else "")
    diarizer = Diarizer(name, pipeline)
    rows = []
    for file in files:
        pcm = decode_to_pcm(file.path, Path("/tmp/diar-sweep.pcm"))
        samples = pcm.read()
        regions = [SpeechRegion(0, len(samples))]
        if speech_only:
            vad = speech_regions(speech_probabilities(pcm), pcm.samples)
            regions = [r for span in diarization_spans(vad) for r in span.regions]
        lead = int(phase * 16000)
        heard = np.concatenate(
            [np.zeros(lead, np.float32), *(samples[r.start : r.end] for r in regions)]
        )
        started = time.perf_counter()
        if config.reassigned:  # the service's turns: the Diarizer's, then reassigned
            found = diarizer.diarize(Audio(heard), SpeakerLimits())
            embed_many = made[config.embedding].inner.embed_many
            heard_turns, _ = reassign_turns(found.turns, found.embeddings, heard, 16000, embed_many)
        else:  # the pipeline's own (overlapping) output
            output = pipeline({"waveform": torch.from_numpy(heard)[None], "sample_rate": 16000})
            heard_turns = tuple(
                SpeakerTurn(round(t.start * 1000), round(t.end * 1000), who)
                for t, _, who in output.speaker_diarization.itertracks(yield_label=True)
            )
        took = time.perf_counter() - started
        lead_ms = lead * 1000 // 16000
        turns = [
            replace(t, start_ms=max(0, t.start_ms - lead_ms), end_ms=t.end_ms - lead_ms)
            for t in heard_turns
            if t.end_ms > lead_ms
        ]
        spans = [
            (t.start_ms / 1000, t.end_ms / 1000, t.speaker) for t in to_recording(turns, regions)
        ]
        rows.append(
            {
                "file": file.name,
                "config": name,
                **score(file, spans),
                "truth": file.speakers,
                "s_per_min": took / (file.duration_s / 60),
            }
        )
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    configs = list(dict.fromkeys(r["config"] for r in rows))
    files = list(dict.fromkeys(r["file"] for r in rows))
    head = "| config | " + " | ".join(files) + " | mean DER | counts right | s / min |"
    lines = [head, "|---" * (len(files) + 4) + "|"]
    for config in configs:
        mine = {r["file"]: r for r in rows if r["config"] == config}
        cells = [f"{mine[f]['der']:.1%} ({mine[f]['speakers']}/{mine[f]['truth']})" for f in files]
        mean = np.mean([mine[f]["der"] for f in files])
        right = sum(mine[f]["speakers"] == mine[f]["truth"] for f in files)
        speed = np.mean([mine[f]["s_per_min"] for f in files])
        lines.append(
            f"| {config} | " + " | ".join(cells) + f" | {mean:.1%} | {right}/{len(files)} "
            f"| {speed:.2f} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """Per configuration and mode, over every phase: mean DER, counts right, worst DER."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        name, _, rest = r["config"].partition(" ~")
        mode = rest.partition(" ")[2] or "whole"
        groups.setdefault(f"{name} {mode}", []).append(r)
    lines = [
        "| config, heard | runs | mean DER | counts right | worst DER |",
        "|---|---|---|---|---|",
    ]
    for name, group in groups.items():
        right = sum(r["speakers"] == r["truth"] for r in group)
        lines.append(
            f"| {name} | {len(group)} | {np.mean([r['der'] for r in group]):.1%} | "
            f"{right}/{len(group)} | {max(r['der'] for r in group):.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="ge2e@0.45")
    parser.add_argument("--files", default="", help="comma-separated names; default all")
    parser.add_argument(
        "--set",
        choices=("dev", "variants", "real-dev", "real-held"),
        default="dev",
        help="the development set, 11 more arrangements of its real-voice and broadcast files,"
        " or a part of the real-voice set (bench/diar_real.py): real-dev to choose on,"
        " real-held only to report a choice made without it",
    )
    parser.add_argument(
        "--phases",
        default="0",
        help="comma-separated seconds of silence before the audio (moves the chunk grid)",
    )
    parser.add_argument(
        "--heard",
        default="whole",
        help="comma-separated: whole (the file) and/or speech (what the service hears)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "diar_sweep.md")
    args = parser.parse_args()
    sets = {
        "dev": development_set,
        "variants": variant_set,
        "real-dev": lambda: [f for f in real_set() if f.name.startswith("dev-")],
        "real-held": lambda: [f for f in real_set() if f.name.startswith("held-")],
    }
    files = sets[args.set]()
    if args.files:
        files = [f for f in files if f.name in args.files.split(",")]
    made = embeddings()
    rows: list[dict[str, Any]] = []
    for text in args.configs.split(","):
        for heard in args.heard.split(","):
            for phase in map(float, args.phases.split(",")):
                rows += run(Config.parse(text), files, made, phase, heard == "speech")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    header = (
        f"Offline diarizer sweep, commit `{commit}`, {platform.node()} ({os.cpu_count()} "
        "cores); DER of the pipeline's own turns (speakers found / true), 0.25 s collar, "
        "overlap not scored. s / min: the first configuration of an embedding and step pays "
        "the embedding; later ones reuse it from the cache.\n\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = header + table(rows) + "\n\n" + summary(rows) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
