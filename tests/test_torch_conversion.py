"""CTranslate2 -> transformers conversion of the bundled tiny.en: complete, and the same
model: transformers' Whisper on the converted weights computes what CTranslate2 float32
computes on the bundled ones (encoder states, and every greedy token on real speech)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_tools import CONVERSATION, JFK
from model_files import write_model_bin

from app.models.ct2_to_torch import ConversionError, convert
from app.pipeline.pcm import SAMPLE_RATE

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from app.models.ct2_whisper import read_model_bin  # noqa: E402


@pytest.fixture(scope="module")
def converted(tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(tiny_en, tmp_path_factory.mktemp("cache"), "tiny.en")


@pytest.fixture(scope="module")
def hf_model(converted: Path) -> Any:
    model, info = transformers.WhisperForConditionalGeneration.from_pretrained(
        converted, output_loading_info=True
    )
    # Every parameter came from the file: none left at its random initial value.
    assert info["missing_keys"] == [] or set(info["missing_keys"]) == {"proj_out.weight"}
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    return model.eval()


def features(path: Path) -> np.ndarray:
    """The first 30 s as Whisper's log-mel input (faster-whisper's extractor, padded)."""
    import av
    from faster_whisper.feature_extractor import FeatureExtractor

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = [
            f.to_ndarray().reshape(-1)
            for frame in container.decode(audio=0)
            for f in resampler.resample(frame)
        ]
    audio = np.concatenate(chunks)[: 30 * SAMPLE_RATE]
    mel = FeatureExtractor(feature_size=80)(audio, padding=30 * SAMPLE_RATE)[:, :3000]
    return np.ascontiguousarray(mel[None], dtype=np.float32)


def test_layout_and_generation_config(converted: Path, hf_model: Any, tiny_en: Path) -> None:
    config = json.loads((converted / "config.json").read_text())
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"]) == (384, 4, 4)
    assert config["vocab_size"] == 51864
    generation = json.loads((converted / "generation_config.json").read_text())
    ct2_config = json.loads((tiny_en / "config.json").read_text())
    assert generation["alignment_heads"] == ct2_config["alignment_heads"]
    assert generation["suppress_tokens"] == ct2_config["suppress_ids"]
    assert generation["is_multilingual"] is False
    model = hf_model
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("clip", [JFK, CONVERSATION], ids=["jfk", "conversation"])
def test_same_encoder_states_and_greedy_tokens_as_ctranslate2(
    tiny_en: Path, hf_model: Any, clip: Path
) -> None:
    import ctranslate2

    mel = features(clip)
    ct2 = ctranslate2.models.Whisper(str(tiny_en), device="cpu", compute_type="float32")
    view = ctranslate2.StorageView.from_array(mel)
    ct2_states = np.array(ct2.encode(view, to_cpu=True))
    prompt = [50257, 50362]  # <|startoftranscript|><|notimestamps|> of the English-only vocab
    result = ct2.generate(
        view, [prompt], beam_size=1, suppress_blank=False, suppress_tokens=[], max_length=224
    )[0]
    tokens = result.sequences_ids[0]
    assert len(tokens) > 10

    model = hf_model
    with torch.inference_mode():
        states = model.model.encoder(torch.from_numpy(mel)).last_hidden_state.numpy()
        decoder_input = torch.tensor([prompt + tokens])
        logits = model(encoder_outputs=(torch.from_numpy(states),), decoder_input_ids=decoder_input)
    assert np.abs(states - ct2_states).max() < 1e-3
    # Teacher-forced on CTranslate2's tokens, transformers' greedy choice at every step is
    # CTranslate2's, and after the last one it ends the text.
    chosen = logits.logits[0, len(prompt) - 1 :].argmax(-1).tolist()
    assert chosen == [*tokens, 50256]


def test_a_model_that_does_not_map_exactly_is_refused(tiny_en: Path, tmp_path: Path) -> None:
    variables, aliases = read_model_bin(tiny_en / "model.bin")
    ffn = variables["decoder/layer_3/ffn/linear_0/weight"]
    variables["decoder/layer_3/ffn/linear_0/weight"] = ffn[:-1]
    source = tmp_path / "source"
    source.mkdir()
    for extra in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copyfile(tiny_en / extra, source / extra)
    write_model_bin(source / "model.bin", variables, aliases)
    with pytest.raises(ConversionError, match="layout mismatch"):
        convert(source, tmp_path / "cache", "tiny.en")
    assert list((tmp_path / "cache" / "transformers").iterdir()) == []


def test_multilingual_generation_config_names_languages(
    cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """transformers' generate(language=...) reads languages from the converted config."""
    from model_files import bundled_model

    from app.models.ct2_to_torch import convert

    folder = convert(bundled_model("base", cache_dir), tmp_path_factory.mktemp("conv"), "base")
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["lang_to_id"]["<|en|>"] == 50259
    assert generation["lang_to_id"]["<|es|>"] == 50262
    assert len(generation["lang_to_id"]) == 99
