"""256-d speaker embeddings from the GE2E voice encoder whose weights ship in `resemblyzer`.

The network (3-layer LSTM over 40 mel bands, linear + ReLU, L2-normalised) is rebuilt here
in plain torch so that only the weights file is needed from the package (its audio module
pulls in webrtcvad and librosa at import). It is wrapped in the interface pyannote.audio's
SpeakerDiarization pipeline expects of an embedding model: called with waveforms and
per-frame speaker masks, it returns one embedding per (chunk, speaker) pair.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import nn

SAMPLE_RATE = 16000
DIMENSION = 256
_N_MELS = 40
_HOP = 160  # 10 ms
_WINDOW = 400  # 25 ms
_PARTIAL_FRAMES = 160  # 1.6 s per partial utterance
_PARTIAL_STEP = 80  # 50 % overlap between partials
_TARGET_DBFS = -30.0
MIN_SAMPLES = SAMPLE_RATE // 2  # below 0.5 s of speech an embedding is noise


def weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the resemblyzer package (voice encoder weights) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


class VoiceEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(_N_MELS, DIMENSION, 3, batch_first=True)
        self.linear = nn.Linear(DIMENSION, DIMENSION)
        # Same filterbank as the encoder was trained on (librosa's Slaney mel, power 2).
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=_WINDOW,
            hop_length=_HOP,
            n_mels=_N_MELS,
            norm="slaney",
            mel_scale="slaney",
            power=2.0,
            center=True,
            pad_mode="constant",
        )

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def partials(self, wav: np.ndarray) -> torch.Tensor:
        """1.6 s mel windows, half overlapping, over a volume-normalised stretch of speech."""
        mels = self.mel(torch.from_numpy(_normalize_volume(wav))).T  # (frames, 40)
        frames = mels.shape[0]
        if frames < _PARTIAL_FRAMES:
            mels = torch.nn.functional.pad(mels, (0, 0, 0, _PARTIAL_FRAMES - frames))
            frames = _PARTIAL_FRAMES
        starts = range(0, frames - _PARTIAL_FRAMES + 1, _PARTIAL_STEP)
        return torch.stack([mels[s : s + _PARTIAL_FRAMES] for s in starts])

    @torch.inference_mode()
    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised embedding per stretch of speech (the mean of its partials);
        all partials go through the LSTM together, which is what makes it fast."""
        pieces = [self.partials(w) for w in wavs]
        counts = [len(p) for p in pieces]
        outputs = torch.cat([self(batch) for batch in torch.cat(pieces).split(512)])
        means = torch.stack([chunk.mean(dim=0) for chunk in outputs.split(counts)])
        return (means / means.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy()


def _normalize_volume(wav: np.ndarray) -> np.ndarray:
    """Raise quiet speech to the level the encoder was trained at (never lower loud)."""
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    if rms <= 1e-6:
        return wav.astype(np.float32)
    gain = 10 ** ((_TARGET_DBFS - 20 * np.log10(rms)) / 20)
    return (wav * max(gain, 1.0)).astype(np.float32)


def load_voice_encoder(device: str = "cpu") -> VoiceEncoder:
    encoder = VoiceEncoder()
    checkpoint = torch.load(weights_path(), map_location="cpu", weights_only=True)
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity")}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("mel.") for k in missing):
        raise RuntimeError(f"voice encoder weights do not fit: {missing=} {unexpected=}")
    return encoder.eval().to(device)


class PyannoteEmbedding:
    """The embedding interface pyannote's SpeakerDiarization calls (see its get_embeddings):
    one embedding per (chunk, speaker) from the chunk's samples where that speaker's frame
    mask is on, NaN (left out of clustering) under 0.5 s of speech. A subclass gives the
    network, its `dimension` and `embed_many` (all of a batch's speech at once)."""

    sample_rate = SAMPLE_RATE
    metric = "cosine"
    min_num_samples = MIN_SAMPLES
    dimension: int

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def to(self, device: torch.device) -> PyannoteEmbedding:
        self.network.to(device)
        return self

    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        batch, _, num_samples = waveforms.shape
        out = np.full((batch, self.dimension), np.nan, dtype=np.float32)
        kept: list[int] = []
        speech: list[np.ndarray] = []
        for i in range(batch):
            wav = waveforms[i, 0].cpu().numpy()
            if masks is not None:
                frames = masks[i].cpu().numpy()
                # Frame-level mask -> sample-level: keep only where this speaker is active.
                index = np.minimum(
                    (np.arange(num_samples) * len(frames)) // num_samples, len(frames) - 1
                )
                wav = wav[frames[index] > 0.5]
            if len(wav) >= MIN_SAMPLES:
                kept.append(i)
                speech.append(wav)
        if speech:
            out[kept] = self.embed_many(speech)
        return out


class PyannoteVoiceEmbedding(PyannoteEmbedding):
    """GE2E: one LSTM pass over the partials of the whole batch."""

    dimension = DIMENSION

    def __init__(self, encoder: VoiceEncoder) -> None:
        super().__init__(encoder)
        self.encoder = encoder

    def embed_many(self, wavs: list[np.ndarray]) -> np.ndarray:
        return self.encoder.embed_many(wavs)
