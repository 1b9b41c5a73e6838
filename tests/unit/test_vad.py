"""The block-wise VAD finds exactly the speech regions faster-whisper's own VAD finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_tools import CONVERSATION, JFK, pyannote_sample
from faster_whisper.vad import VadOptions as FwVadOptions
from faster_whisper.vad import get_speech_timestamps

from app.pipeline.decode import decode_file
from app.pipeline.pcm import PcmFile
from app.pipeline.vad import SpeechRegion, VadOptions, speech_probabilities, speech_regions


def pcm_of(samples: np.ndarray, path: Path) -> PcmFile:
    (np.clip(samples, -1, 32767 / 32768) * 32768).astype("<i2").tofile(path)
    return PcmFile(path)


def regions(pcm: PcmFile, **options: float) -> list[SpeechRegion]:
    return speech_regions(speech_probabilities(pcm), pcm.samples, VadOptions(**options))  # type: ignore[arg-type]


def reference(samples: np.ndarray, **options: float) -> list[SpeechRegion]:
    found = get_speech_timestamps(samples, FwVadOptions(**options))
    return [SpeechRegion(r["start"], r["end"]) for r in found]


@pytest.mark.parametrize(
    "options", [{}, {"max_speech_duration_s": 5, "min_silence_duration_ms": 160}]
)
def test_same_regions_as_faster_whisper_on_real_speech(
    tmp_path: Path, options: dict[str, float]
) -> None:
    # Over 320 s, so the recurrent state crosses a block boundary: silence, speech, noise.
    wav, _ = pyannote_sample()
    parts = [decode_file(p).samples for p in (JFK, CONVERSATION, wav)]
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(16000 * 5) * 0.01).astype(np.float32)
    samples = np.concatenate([*parts * 6, noise, np.zeros(16000 * 3, np.float32)])
    assert len(samples) > 16000 * 320
    pcm = pcm_of(samples, tmp_path / "a.pcm")
    expected = reference(pcm.read(), **options)
    assert len(expected) >= 5
    assert regions(pcm, **options) == expected


def test_digital_silence_has_no_speech_and_skips_the_network(tmp_path: Path) -> None:
    pcm = pcm_of(np.zeros(16000 * 700, dtype=np.float32), tmp_path / "silence.pcm")
    probabilities = speech_probabilities(pcm)
    assert len(probabilities) == 700 * 16000 // 512 + 1
    assert not probabilities.any()
    assert regions(pcm) == []


def test_speech_after_a_long_silence_is_still_found(tmp_path: Path) -> None:
    speech = decode_file(JFK).samples
    samples = np.concatenate([np.zeros(16000 * 400, np.float32), speech])
    found = regions(pcm_of(samples, tmp_path / "late.pcm"))
    assert found and found[0].start >= 16000 * 399
    assert found[-1].end <= len(samples)
