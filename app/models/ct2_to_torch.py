"""CTranslate2 Whisper folders -> transformers' WhisperForConditionalGeneration, converted
once and checked tensor by tensor.

The output is a folder `from_pretrained` reads: config.json (WhisperConfig),
model.safetensors (float32, every name transformers' Whisper has, nothing else),
generation_config.json (special tokens, alignment heads for DTW word times, suppressed
tokens, as CTranslate2's config.json had them) and the source's tokenizer.json. Reading
model.bin and naming the tensors as openai-whisper does is ct2_whisper.py's part; here the
openai names become transformers' (the same renaming transformers' own
convert_openai_to_hf.py does), and the result is checked against a freshly built
WhisperForConditionalGeneration: same names, same shapes, the output projection tied to
the token embedding.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from app.languages import LANGUAGE_NAMES
from app.models.ct2_whisper import (
    ConversionError,
    alignment_heads,
    check_layout,
    check_vocabulary,
    convert_once,
    dimensions,
    model_dir,
    read_model_bin,
    whisper_weights,
)

__all__ = ["ConversionError", "convert", "torch_model_dir"]

FORMAT_VERSION = 3
"""Bump when the output layout changes, so stale conversions are redone."""

_FILES = (
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "conversion.json",
)
_MULTILINGUAL_VOCAB = 51865
# openai-whisper's names -> transformers', applied in order to every name.
_RENAMES = (
    (r"^encoder\.positional_embedding$", "encoder.embed_positions.weight"),
    (r"^decoder\.positional_embedding$", "decoder.embed_positions.weight"),
    (r"^decoder\.token_embedding\.", "decoder.embed_tokens."),
    (r"^encoder\.ln_post\.", "encoder.layer_norm."),
    (r"^decoder\.ln\.", "decoder.layer_norm."),
    (r"\.blocks\.", ".layers."),
    (r"\.cross_attn_ln\.", ".encoder_attn_layer_norm."),
    (r"\.attn_ln\.", ".self_attn_layer_norm."),
    (r"\.mlp_ln\.", ".final_layer_norm."),
    (r"\.mlp1\.", ".fc1."),
    (r"\.mlp2\.", ".fc2."),
    (r"\.cross_attn\.", ".encoder_attn."),
    (r"\.attn\.", ".self_attn."),
    (r"\.query\.", ".q_proj."),
    (r"\.key\.", ".k_proj."),
    (r"\.value\.", ".v_proj."),
    (r"\.out\.", ".out_proj."),
)


def torch_model_dir(cache_dir: Path, name: str) -> Path:
    return model_dir(cache_dir, "transformers", name)


def convert(source: Path, cache_dir: Path, name: str) -> Path:
    """Convert the CTranslate2 folder `source` into <cache_dir>/transformers/<name>/ unless
    an up-to-date conversion is there already; return that folder."""
    return convert_once(source, torch_model_dir(cache_dir, name), FORMAT_VERSION, _FILES, _write)


def transformers_name(openai_name: str) -> str:
    name = openai_name
    for pattern, replacement in _RENAMES:
        name = re.sub(pattern, replacement, name)
    return f"model.{name}"


def _write(source: Path, out: Path, stamp: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    variables, aliases = read_model_bin(source / "model.bin")
    ct2_config = json.loads((source / "config.json").read_text())
    dims = dimensions(variables)
    weights = {
        transformers_name(k): v for k, v in whisper_weights(variables, aliases, dims).items()
    }
    check_vocabulary(source / "vocabulary.txt", dims["n_vocab"])
    specials = _special_tokens(source / "vocabulary.txt")
    config = _config(dims, weights, specials)
    heads = alignment_heads(ct2_config, dims)
    _check_layout(weights, config)
    save_file(
        {k: np.ascontiguousarray(v) for k, v in weights.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    generation = _generation_config(ct2_config, specials, heads, dims["n_vocab"])
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
    record = {"source": stamp, "dimensions": dims, "alignment_heads": heads.tolist()}
    (out / "conversion.json").write_text(json.dumps(record, indent=2))


def _special_tokens(vocabulary: Path) -> dict[str, int]:
    tokens = vocabulary.read_text(encoding="utf-8").rstrip("\n").split("\n")
    index = {token: i for i, token in enumerate(tokens)}
    wanted = ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|transcribe|>")
    missing = [t for t in wanted if t not in index]
    if missing:
        raise ConversionError(f"vocabulary.txt lacks {missing}")
    optional = ("<|translate|>", "<|startofprev|>", "<|0.00|>")
    languages = tuple(f"<|{code}|>" for code in LANGUAGE_NAMES)
    return {t: index[t] for t in wanted} | {t: index[t] for t in optional + languages if t in index}


def _config(
    dims: dict[str, int], weights: dict[str, np.ndarray], specials: dict[str, int]
) -> dict[str, Any]:
    if dims["n_audio_state"] != dims["n_text_state"]:
        raise ConversionError("encoder and decoder widths differ; transformers' Whisper needs one")
    eot = specials["<|endoftext|>"]
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": dims["n_vocab"],
        "num_mel_bins": dims["n_mels"],
        "d_model": dims["n_audio_state"],
        "encoder_layers": dims["n_audio_layer"],
        "encoder_attention_heads": dims["n_audio_head"],
        "encoder_ffn_dim": int(weights["model.encoder.layers.0.fc1.weight"].shape[0]),
        "decoder_layers": dims["n_text_layer"],
        "decoder_attention_heads": dims["n_text_head"],
        "decoder_ffn_dim": int(weights["model.decoder.layers.0.fc1.weight"].shape[0]),
        "max_source_positions": dims["n_audio_ctx"],
        "max_target_positions": dims["n_text_ctx"],
        "decoder_start_token_id": specials["<|startoftranscript|>"],
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
    }


def _generation_config(
    ct2_config: dict[str, Any], specials: dict[str, int], heads: np.ndarray, n_vocab: int
) -> dict[str, Any]:
    eot = specials["<|endoftext|>"]
    english_only = n_vocab < _MULTILINGUAL_VOCAB  # as openai-whisper tells them apart
    generation: dict[str, Any] = {
        "decoder_start_token_id": specials["<|startoftranscript|>"],
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "no_timestamps_token_id": specials["<|notimestamps|>"],
        "is_multilingual": not english_only,
        "alignment_heads": heads.tolist(),
        "suppress_tokens": list(ct2_config.get("suppress_ids", [])),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin", [])),
    }
    if "<|0.00|>" in specials:
        generation["max_initial_timestamp_index"] = 50
    if "<|startofprev|>" in specials:
        generation["prev_sot_token_id"] = specials["<|startofprev|>"]
    if not english_only:
        generation["task_to_id"] = {
            "transcribe": specials["<|transcribe|>"],
            "translate": specials["<|translate|>"],
        }
        # transformers' `generate(language=...)` looks languages up here.
        generation["lang_to_id"] = {
            f"<|{code}|>": specials[f"<|{code}|>"]
            for code in LANGUAGE_NAMES
            if f"<|{code}|>" in specials
        }
    return generation


def _check_layout(weights: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """Exactly the names and shapes of transformers' own Whisper for this config (built on
    the meta device: no memory for its parameters), its projection tied to the embedding."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    with torch.device("meta"):
        reference = WhisperForConditionalGeneration(WhisperConfig(**config))
    expected = {k: tuple(t.shape) for k, t in reference.state_dict().items()}
    expected.pop("proj_out.weight")  # tied to model.decoder.embed_tokens.weight
    if reference.get_output_embeddings().weight is not reference.get_input_embeddings().weight:
        raise ConversionError("transformers' Whisper did not tie proj_out to embed_tokens")
    check_layout(weights, expected)
