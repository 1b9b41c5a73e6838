"""The streaming pipeline changes no words: on every test clip, its transcript (VAD a block
at a time, speech joined per block, times mapped back) equals what faster-whisper gives for
the whole file with its own VAD filter, the path every request took before; and a long
recording cut into several blocks still comes out whole and in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audio_tools import CONVERSATION, FIXTURES, JFK, SPANISH, normalize, pyannote_sample

from app.config import Settings
from app.domain import DecodeOptions, Transcript, TranscriptionRequest
from app.engines.ctranslate2_engine import CTranslate2Engine
from app.metrics import Metrics
from app.models.cache import ModelCache
from app.models.hub import HubClient
from app.models.registry import ModelRegistry
from app.pipeline.decode import decode_file
from app.pipeline.runner import Pipeline

pytestmark = pytest.mark.e2e

CLIPS = [JFK, CONVERSATION, FIXTURES / "conversation3.flac", FIXTURES / "rapid.flac", SPANISH]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[Pipeline]:
    settings = Settings(_env_file=None, cache_dir=cache_dir, hf_hub_offline=True)
    hub = HubClient(settings)
    engine = CTranslate2Engine("cpu", "int8", batch_size=1, cpu_threads=0, num_workers=1)
    cache = ModelCache()
    yield Pipeline(settings, engine, ModelRegistry(settings, hub), cache, Metrics())
    cache.unload_all()


def through_pipeline(
    pipeline: Pipeline, path: Path, tmp: Path, *, model: str, word_timestamps: bool
) -> Transcript:
    options = DecodeOptions(word_timestamps=word_timestamps)
    request = TranscriptionRequest(model=model, options=options)
    ref = pipeline.prepare(request)
    output = pipeline.run_models(ref, path, tmp, request, lambda stage, fraction: None)
    return pipeline.finish(output, request)


def whole_file(pipeline: Pipeline, path: Path, *, model: str, word_timestamps: bool) -> Transcript:
    ref = pipeline.prepare(TranscriptionRequest(model=model))
    with pipeline.whisper(ref) as loaded:
        return loaded.transcribe(decode_file(path), DecodeOptions(word_timestamps=word_timestamps))


def shape(transcript: Transcript) -> list[tuple[int, int, str, list[tuple[int, int, str]]]]:
    return [
        (s.start_ms, s.end_ms, s.text, [(w.start_ms, w.end_ms, w.text) for w in s.words])
        for s in transcript.segments
    ]


@pytest.mark.parametrize("path", [*CLIPS, pyannote_sample()[0]], ids=lambda p: p.stem)
@pytest.mark.parametrize("words", [True, False])
def test_same_segments_words_and_times_as_before(
    pipeline: Pipeline, tmp_path: Path, path: Path, words: bool
) -> None:
    model = "base" if path in (SPANISH, pyannote_sample()[0]) else "tiny.en"
    ours = through_pipeline(pipeline, path, tmp_path, model=model, word_timestamps=words)
    before = whole_file(pipeline, path, model=model, word_timestamps=words)
    assert shape(ours) == shape(before)
    assert ours.language == before.language and ours.duration_ms == before.duration_ms


def test_a_long_recording_spans_several_blocks_in_order(pipeline: Pipeline, tmp_path: Path) -> None:
    """12 minutes (the conversation 40 times with 3 s of silence between): two blocks."""
    speech = decode_file(CONVERSATION).samples
    gap = np.zeros(3 * 16000, dtype=np.float32)
    samples = np.concatenate([np.concatenate([speech, gap])] * 40)
    wav = tmp_path / "long.pcm"
    (samples * 32767).astype("<i2").tofile(wav)
    request = TranscriptionRequest(
        model="tiny.en", options=DecodeOptions(word_timestamps=True), encoded=False
    )
    ref = pipeline.prepare(request)
    stages: list[tuple[str, float]] = []
    output = pipeline.run_models(ref, wav, tmp_path, request, lambda s, f: stages.append((s, f)))
    transcript = pipeline.finish(output, request)
    starts = [w.start_ms for w in transcript.words]
    assert starts == sorted(starts) and transcript.words[-1].end_ms <= transcript.duration_ms
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))
    text = normalize(transcript.text)
    assert text.count("budget") >= 38  # every repetition heard, none lost at block edges
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and {"vad", "transcribe"} <= {s for s, _ in stages}
