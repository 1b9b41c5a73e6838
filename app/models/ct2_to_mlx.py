"""CTranslate2 Whisper folders -> mlx-whisper's layout, converted once and checked exactly.

The output is what mlx_whisper.load_models.load_model reads: config.json (ModelDimensions
and model_type) and weights.safetensors with mlx-whisper's names (openai-whisper's; reading
and naming are in ct2_whisper.py). DTW's alignment heads go in the weights as
`alignment_heads`, where mlx-whisper keeps them (its ModelDimensions(**config) would reject
an extra config key). conversion.json records the source, so an up-to-date conversion is
reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from app.models.ct2_whisper import (
    ConversionError,
    alignment_heads,
    check_layout,
    check_sinusoids,
    check_vocabulary,
    convert_once,
    dimensions,
    model_dir,
    read_model_bin,
    whisper_weights,
)

__all__ = ["ConversionError", "convert", "mlx_model_dir", "read_model_bin"]

FORMAT_VERSION = 1
"""Bump when the output layout changes, so stale conversions are redone."""

_FILES = ("config.json", "weights.safetensors", "conversion.json")


def mlx_model_dir(cache_dir: Path, name: str) -> Path:
    return model_dir(cache_dir, "mlx", name)


def convert(source: Path, cache_dir: Path, name: str) -> Path:
    """Convert the CTranslate2 folder `source` into <cache_dir>/mlx/<name>/ unless an
    up-to-date conversion is there already; return that folder."""
    return convert_once(source, mlx_model_dir(cache_dir, name), FORMAT_VERSION, _FILES, _write)


def _write(source: Path, out: Path, stamp: dict[str, Any]) -> None:
    import mlx.core as mx

    variables, aliases = read_model_bin(source / "model.bin")
    config = json.loads((source / "config.json").read_text())
    dims = dimensions(variables)
    weights = whisper_weights(variables, aliases, dims)
    check_sinusoids(weights.pop("encoder.positional_embedding"))  # MLX computes its own
    for conv in ("conv1", "conv2"):  # (out, in, width) -> MLX's (out, width, in)
        weights[f"encoder.{conv}.weight"] = weights[f"encoder.{conv}.weight"].transpose(0, 2, 1)
    heads = alignment_heads(config, dims)
    weights["alignment_heads"] = heads
    _check_layout(weights, dims)
    check_vocabulary(source / "vocabulary.txt", dims["n_vocab"])
    mx.save_safetensors(
        str(out / "weights.safetensors"), {k: mx.array(v) for k, v in weights.items()}
    )
    (out / "config.json").write_text(json.dumps({"model_type": "whisper", **dims}, indent=2))
    record = {"source": stamp, "dimensions": dims, "alignment_heads": heads.tolist()}
    (out / "conversion.json").write_text(json.dumps(record, indent=2))


def _check_layout(weights: dict[str, np.ndarray], dims: dict[str, int]) -> None:
    """Same names and shapes as mlx-whisper's own Whisper for these dimensions (MLX is lazy:
    building the module to read its shapes allocates nothing)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_whisper.whisper import ModelDimensions, Whisper

    reference = Whisper(ModelDimensions(**dims), mx.float32).parameters()
    expected = {k: tuple(a.shape) for k, a in dict(tree_flatten(reference)).items()}
    expected["alignment_heads"] = (len(weights["alignment_heads"]), 2)
    check_layout(weights, expected)
