"""CTranslate2 -> MLX conversion of the bundled tiny.en: exact, complete, done once."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.engines.mlx_engine import prefer_openblas

prefer_openblas()  # before mlx.core is first imported, or MLX keeps its slow reference BLAS
mx = pytest.importorskip("mlx.core")

from mlx.utils import tree_flatten  # noqa: E402
from mlx_whisper.whisper import ModelDimensions, Whisper  # noqa: E402
from model_files import write_model_bin  # noqa: E402

from app.models.ct2_to_mlx import ConversionError, convert, read_model_bin  # noqa: E402

TINY_EN_DIMS = ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)


@pytest.fixture(scope="module")
def converted(tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(tiny_en, tmp_path_factory.mktemp("cache"), "tiny.en")


def ct2_tensors_from_mlx(w: dict[str, np.ndarray], dims: ModelDimensions) -> dict[str, np.ndarray]:
    """Rebuild CTranslate2's tensors from the MLX weights (the inverse of the conversion)."""
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        out[f"{dst}/weight"], out[f"{dst}/bias"] = w[f"{src}.weight"], w[f"{src}.bias"]

    def norm(dst: str, src: str) -> None:
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = w[f"{src}.weight"], w[f"{src}.bias"]

    def fused(dst: str, srcs: list[str]) -> None:
        out[f"{dst}/weight"] = np.concatenate([w[f"{s}.weight"] for s in srcs])
        zeros = np.zeros(w[f"{srcs[0]}.weight"].shape[0], np.float32)  # the key has no bias
        out[f"{dst}/bias"] = np.concatenate([w.get(f"{s}.bias", zeros) for s in srcs])

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
        fused(
            f"{dst}/self_attention/linear_0", [f"{src}.attn.{p}" for p in ("query", "key", "value")]
        )
        linear(f"{dst}/self_attention/linear_1", f"{src}.attn.out")
        if cross:
            norm(f"{dst}/attention/layer_norm", f"{src}.cross_attn_ln")
            linear(f"{dst}/attention/linear_0", f"{src}.cross_attn.query")
            fused(f"{dst}/attention/linear_1", [f"{src}.cross_attn.key", f"{src}.cross_attn.value"])
            linear(f"{dst}/attention/linear_2", f"{src}.cross_attn.out")
        norm(f"{dst}/ffn/layer_norm", f"{src}.mlp_ln")
        linear(f"{dst}/ffn/linear_0", f"{src}.mlp1")
        linear(f"{dst}/ffn/linear_1", f"{src}.mlp2")

    for conv in ("conv1", "conv2"):
        out[f"encoder/{conv}/weight"] = w[f"encoder.{conv}.weight"].transpose(0, 2, 1)
        out[f"encoder/{conv}/bias"] = w[f"encoder.{conv}.bias"]
    for i in range(dims.n_audio_layer):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    norm("encoder/layer_norm", "encoder.ln_post")
    out["decoder/embeddings/weight"] = w["decoder.token_embedding.weight"]
    out["decoder/position_encodings/encodings"] = w["decoder.positional_embedding"]
    for i in range(dims.n_text_layer):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    norm("decoder/layer_norm", "decoder.ln")
    return out


def test_conversion_is_exact_and_complete(tiny_en: Path, converted: Path) -> None:
    config = json.loads((converted / "config.json").read_text())
    assert config.pop("model_type") == "whisper"
    dims = ModelDimensions(**config)
    assert dims == TINY_EN_DIMS
    weights = {k: np.array(v) for k, v in mx.load(str(converted / "weights.safetensors")).items()}

    # Names and shapes are exactly those of mlx-whisper's own model of these dimensions.
    model = Whisper(dims, mx.float32)
    flat: Any = tree_flatten(model.parameters())  # a list of (name, array) pairs
    expected = {k: tuple(v.shape) for k, v in flat}
    assert weights.keys() == expected.keys()
    for name, value in weights.items():
        if name == "alignment_heads":
            assert value.dtype == np.int64
            continue
        assert value.shape == expected[name], name
        assert value.dtype == np.float32, name  # float16 widened for the CPU backend

    # Every CTranslate2 tensor comes back bit for bit from the MLX weights: nothing dropped,
    # moved or rounded; scalars are the head counts and flags the converter checks.
    variables, aliases = read_model_bin(tiny_en / "model.bin")
    assert variables["decoder/embeddings/weight"].dtype == np.float32
    rebuilt = ct2_tensors_from_mlx(weights, dims)
    tensors = {k for k, v in variables.items() if v.ndim > 0}
    assert rebuilt.keys() == tensors - {"encoder/position_encodings/encodings"}
    for name, value in rebuilt.items():
        np.testing.assert_array_equal(value, variables[name], err_msg=name)
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}  # tied output
    # MLX computes the encoder's sinusoids itself; they match the stored (float16) ones.
    ours = np.array(model.encoder._positional_embedding)
    assert np.abs(ours - variables["encoder/position_encodings/encodings"]).max() < 1e-3

    ct2_config = json.loads((tiny_en / "config.json").read_text())
    assert weights["alignment_heads"].tolist() == ct2_config["alignment_heads"]


def test_conversion_happens_once(tiny_en: Path, converted: Path) -> None:
    weights = converted / "weights.safetensors"
    before = weights.stat()
    again = convert(tiny_en, converted.parent.parent, "tiny.en")
    assert again == converted
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [p.name for p in converted.parent.iterdir()] == ["tiny.en"]  # no staging leftovers


def test_a_changed_source_is_converted_again(tiny_en: Path, tmp_path: Path) -> None:
    source = shutil.copytree(tiny_en, tmp_path / "source")
    first = convert(source, tmp_path / "cache", "tiny.en")
    inode = (first / "weights.safetensors").stat().st_ino
    stat = (source / "model.bin").stat()
    os.utime(source / "model.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = convert(source, tmp_path / "cache", "tiny.en")
    assert second == first and (second / "weights.safetensors").stat().st_ino != inode
    assert sorted(p.name for p in second.parent.iterdir()) == ["tiny.en"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("extra", "no Whisper counterpart"),
        ("missing", "lacks decoder/layer_2/ffn/linear_1/bias"),
        ("key_bias", "non-zero bias"),
        ("wrong_shape", "layout mismatch"),
    ],
)
def test_a_model_that_does_not_map_exactly_is_refused(
    tiny_en: Path, tmp_path: Path, edit: str, message: str
) -> None:
    variables, aliases = read_model_bin(tiny_en / "model.bin")
    if edit == "extra":
        variables["decoder/layer_0/extra/weight"] = np.ones((2, 2), np.float32)
    elif edit == "missing":
        del variables["decoder/layer_2/ffn/linear_1/bias"]
    elif edit == "key_bias":
        bias = variables["encoder/layer_1/self_attention/linear_0/bias"].copy()
        bias[400] = 0.5  # inside the key's third of the fused q;k;v bias
        variables["encoder/layer_1/self_attention/linear_0/bias"] = bias
    else:
        ffn = variables["decoder/layer_3/ffn/linear_0/weight"]
        variables["decoder/layer_3/ffn/linear_0/weight"] = ffn[:-1]
    source = tmp_path / "source"
    source.mkdir()
    for extra in ("config.json", "vocabulary.txt"):
        shutil.copyfile(tiny_en / extra, source / extra)
    write_model_bin(source / "model.bin", variables, aliases)
    with pytest.raises(ConversionError, match=message):
        convert(source, tmp_path / "cache", "tiny.en")
    assert list((tmp_path / "cache" / "mlx").iterdir()) == []  # nothing half-written left
