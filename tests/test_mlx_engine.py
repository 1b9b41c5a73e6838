"""The MLX engine on Linux's CPU build: same transcripts and word times as CTranslate2."""

from __future__ import annotations

import difflib
import importlib
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_tools import CONVERSATION, JFK, JFK_WORDS, SPANISH, normalize, wer

from app.engines.mlx_engine import prefer_openblas

prefer_openblas()  # before mlx.core is first imported, or MLX keeps its slow reference BLAS
pytest.importorskip("mlx.core")

from app.config import Settings  # noqa: E402
from app.domain import Audio, DecodeOptions, Transcript, Word  # noqa: E402
from app.engines.ctranslate2_engine import CTranslate2Engine  # noqa: E402
from app.engines.mlx_engine import MLXEngine, MLXModel  # noqa: E402
from app.engines.select import build_engine  # noqa: E402
from app.errors import EngineUnavailable  # noqa: E402
from app.models.hub import HubClient  # noqa: E402
from app.models.registry import ModelRegistry  # noqa: E402
from app.pipeline.decode import decode_file  # noqa: E402

pytestmark = pytest.mark.e2e

# Both engines decode greedily from the same float32 weights of the same VAD-cut audio, so
# only float rounding separates them. Measured on tiny.en (2026-11, x86-64, OpenBLAS): WER 0,
# every word's start and end identical to the millisecond, avg_logprob within 3e-4.
MAX_WER = 0.05
MAX_MEDIAN_START_DELTA_S = 0.1
MAX_START_DELTA_S = 0.3
MAX_LOGPROB_DELTA = 0.02
GREEDY_WITH_WORDS = DecodeOptions(beam_size=1, word_timestamps=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def model_path(name: str, cache: Path) -> Path:
    settings = Settings(_env_file=None, cache_dir=cache, hf_hub_offline=True)
    path = ModelRegistry(settings, HubClient(settings)).resolve(name).path
    assert path is not None
    return path


@pytest.fixture(scope="module")
def mlx_engine(cache: Path) -> MLXEngine:
    return MLXEngine(cache)


@pytest.fixture(scope="module")
def mlx_tiny(mlx_engine: MLXEngine, cache: Path) -> MLXModel:
    return mlx_engine.load("tiny.en", model_path("tiny.en", cache))


@pytest.fixture(scope="module")
def transcripts(mlx_tiny: MLXModel, cache: Path) -> dict[Path, tuple[Transcript, Transcript]]:
    """(MLX, CTranslate2 float32) greedy transcripts with words of both fixtures."""
    ct2 = CTranslate2Engine("cpu", "float32", 1, 0, 1).load("tiny.en", model_path("tiny.en", cache))
    out = {}
    for path in (JFK, CONVERSATION):
        audio = decode_file(path)
        out[path] = (
            mlx_tiny.transcribe(audio, GREEDY_WITH_WORDS),
            ct2.transcribe(audio, GREEDY_WITH_WORDS),
        )
    ct2.unload()
    return out


def same_words(ours: list[Word], theirs: list[Word]) -> list[tuple[Word, Word]]:
    """The words both transcripts share, paired in order (a longest-common-subsequence)."""
    keys = [[" ".join(normalize(w.text)) for w in words] for words in (ours, theirs)]
    blocks = difflib.SequenceMatcher(None, keys[0], keys[1], autojunk=False).get_matching_blocks()
    return [(ours[b.a + i], theirs[b.b + i]) for b in blocks for i in range(b.size)]


def test_asr_engine_mlx_selects_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, asr_engine="mlx", cache_dir=tmp_path)
    assert isinstance(build_engine(settings), MLXEngine)
    monkeypatch.setitem(sys.modules, "mlx.core", None)  # as if MLX were not installed
    with pytest.raises(EngineUnavailable, match="uv sync --extra mlx"):
        build_engine(settings)


def test_engine_reports_cpu_float32(mlx_engine: MLXEngine) -> None:
    assert (mlx_engine.name, mlx_engine.device, mlx_engine.compute_type) == (
        "mlx",
        "cpu",
        "float32",
    )


@pytest.mark.parametrize("fixture", [JFK, CONVERSATION], ids=["jfk", "conversation"])
def test_same_text_and_word_times_as_ctranslate2(
    transcripts: dict[Path, tuple[Transcript, Transcript]], fixture: Path
) -> None:
    mlx, ct2 = transcripts[fixture]
    assert (mlx.language, mlx.word_timestamps) == ("en", "whisper-dtw")
    assert wer(ct2.text, mlx.text) <= MAX_WER, (mlx.text, ct2.text)
    assert normalize(" ".join(w.text for w in mlx.words)) == normalize(mlx.text)
    pairs = same_words(mlx.words, ct2.words)
    assert len(pairs) >= (1 - MAX_WER) * len(ct2.words)
    deltas = [abs(a.start_ms - b.start_ms) / 1000 for a, b in pairs]
    assert statistics.median(deltas) < MAX_MEDIAN_START_DELTA_S and max(deltas) < MAX_START_DELTA_S
    assert len(mlx.segments) == len(ct2.segments)
    for a, b in zip(mlx.segments, ct2.segments, strict=True):
        assert abs(a.start_ms - b.start_ms) / 1000 < MAX_START_DELTA_S
        assert abs(a.avg_logprob - b.avg_logprob) < MAX_LOGPROB_DELTA
        assert abs(a.no_speech_prob - b.no_speech_prob) < MAX_LOGPROB_DELTA
        assert a.tokens and a.temperature == 0.0 and a.compression_ratio > 0
        assert all(0 <= w.probability <= 1 and w.start_ms <= w.end_ms for w in a.words)


def test_options_reach_mlx_whisper(mlx_tiny: MLXModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hotwords are folded into the prompt, temperature > 0 is used as is, float32 on CPU."""
    # The module, not the function of the same name that mlx_whisper re-exports.
    mlx_transcribe = importlib.import_module("mlx_whisper.transcribe")
    seen: dict[str, Any] = {}
    real = mlx_transcribe.transcribe

    def spy(audio: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs)
        assert mlx_transcribe.ModelHolder.model is mlx_tiny._model  # our object, not a load
        return real(audio, **kwargs)

    monkeypatch.setattr(mlx_transcribe, "transcribe", spy)
    options = DecodeOptions(initial_prompt="A speech.", hotwords="Kennedy", temperature=0.7)
    result = mlx_tiny.transcribe(decode_file(JFK), options)
    assert seen["initial_prompt"] == "Kennedy A speech."
    assert seen["temperature"] == (0.7,) and seen["fp16"] is False
    assert result.segments and {s.temperature for s in result.segments} == {0.7}
    assert result.word_timestamps is None and not result.words
    assert mlx_transcribe.ModelHolder.model is None  # the global slot is left empty


def test_without_vad_and_on_silence(mlx_tiny: MLXModel) -> None:
    plain = mlx_tiny.transcribe(decode_file(JFK), DecodeOptions(vad_filter=False))
    assert wer(JFK_WORDS, plain.text) <= 0.1, plain.text
    silence = Audio(np.zeros(3 * 16000, dtype=np.float32))
    assert mlx_tiny.transcribe(silence, DecodeOptions()).segments == ()
    assert mlx_tiny.detect_language(silence).code == "en"  # English-only model


def test_multilingual_detection_and_translation(mlx_engine: MLXEngine, cache: Path) -> None:
    base = mlx_engine.load("base", model_path("base", cache))
    assert not base.english_only
    audio = decode_file(SPANISH)
    guess = base.detect_language(audio)
    assert guess.code == "es" and guess.probability > 0.5, guess
    translated = base.transcribe(audio, DecodeOptions(task="translate", beam_size=1))
    assert translated.language == "es" and translated.task == "translate"
    assert "beach" in normalize(translated.text), translated.text
    base.unload()
