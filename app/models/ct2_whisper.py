"""CTranslate2 Whisper folders read back exactly: the shared half of the converters
(ct2_to_mlx.py for mlx-whisper, ct2_to_torch.py for transformers).

model.bin is parsed here, following the writer in ctranslate2/specs/model_spec.py (binary
version 6); int8/int16 weights are dequantized with their stored scales. `whisper_weights`
names every tensor as openai-whisper's Whisper does, and refuses a model with any variable
it cannot place. `convert_once` writes a conversion into a folder of its own, atomically,
and reuses it while the source is unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_CT2_BINARY_VERSION = 6
# CTranslate2's DataType enum order (model_spec._dtype_to_type_id); bfloat16 is widened below.
_CT2_DTYPES: dict[int, Any] = dict(enumerate([np.float32, np.int8, np.int16, np.int32, np.float16]))
_CT2_DTYPES[5] = np.uint16
_BFLOAT16 = 5
# Scalars CTranslate2 stores for its own runtime: the value Whisper's architecture needs.
_REQUIRED_FLAGS = {
    "decoder/activation": 3,  # common_spec.Activation.GELU
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Which attention output CTranslate2 returns when asked; Whisper's DTW uses the config's
# alignment heads instead, so these do not describe the weights.
_RUNTIME_ONLY = {"decoder/alignment_heads", "decoder/alignment_layer"}
_lock = threading.Lock()


class ConversionError(RuntimeError):
    """The CTranslate2 model does not map exactly onto Whisper."""


def read_model_bin(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All variables of a CTranslate2 model.bin (float types widened to float32) and aliases."""
    with path.open("rb") as f:
        version = _unpack(f, "I")
        if version != _CT2_BINARY_VERSION:
            raise ConversionError(f"{path}: CTranslate2 binary version {version} is not supported")
        spec = _read_string(f)
        if spec != "WhisperSpec":
            raise ConversionError(f"{path}: a {spec}, not a Whisper model")
        _unpack(f, "I")  # spec revision: the variable names below are what is checked
        variables: dict[str, np.ndarray] = {}
        for _ in range(_unpack(f, "I")):
            name = _read_string(f)
            shape = tuple(_unpack(f, "I") for _ in range(_unpack(f, "B")))
            type_id, num_bytes = _unpack(f, "B"), _unpack(f, "I")
            if type_id not in _CT2_DTYPES:
                raise ConversionError(f"{path}: {name} has unknown type id {type_id}")
            raw = np.frombuffer(f.read(num_bytes), dtype=_CT2_DTYPES[type_id]).reshape(shape)
            if type_id == _BFLOAT16:  # bfloat16 is the top half of a float32
                raw = (raw.astype(np.uint32) << 16).view(np.float32)
            variables[name] = raw.astype(np.float32) if raw.dtype.kind == "f" else raw
        aliases = {_read_string(f): _read_string(f) for _ in range(_unpack(f, "I"))}
        if f.read(1):
            raise ConversionError(f"{path}: unexpected bytes after the aliases")
    return variables, aliases


def convert_once(
    source: Path,
    target: Path,
    format_version: int,
    files: tuple[str, ...],
    write: Callable[[Path, Path, dict[str, Any]], None],
) -> Path:
    """`write(source, staging, stamp)` into a fresh folder renamed onto `target`, unless an
    up-to-date conversion is there already (conversion.json records the source's stamp)."""
    with _lock:
        stamp = source_stamp(source, format_version)
        if is_up_to_date(target, stamp, files):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would stick to the renamed folder
        try:
            write(source, staging, stamp)
            swap_in(staging, target)
        except OSError:
            if not is_up_to_date(target, stamp, files):  # else another process won the race
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def model_dir(cache_dir: Path, kind: str, name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"not a model name: {name!r}")
    return cache_dir / kind / name


def is_up_to_date(target: Path, stamp: dict[str, Any], files: tuple[str, ...]) -> bool:
    try:
        recorded = json.loads((target / "conversion.json").read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("source") == stamp and all((target / f).is_file() for f in files)


def source_stamp(source: Path, format_version: int) -> dict[str, Any]:
    stat = (source / "model.bin").stat()
    return {
        "format_version": format_version,
        "model_bin": str((source / "model.bin").resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def swap_in(staging: Path, target: Path) -> None:
    """Rename the finished folder into place; a reader never sees a half-written one."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        target.rename(old / "stale")
    try:
        staging.rename(target)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def dimensions(v: dict[str, np.ndarray]) -> dict[str, int]:
    def layers(side: str) -> int:
        return len({m.group(1) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})

    try:
        dims = {
            "n_mels": v["encoder/conv1/weight"].shape[1],
            "n_audio_ctx": v["encoder/position_encodings/encodings"].shape[0],
            "n_audio_state": v["encoder/conv1/weight"].shape[0],
            "n_audio_head": int(v["encoder/num_heads"]),
            "n_audio_layer": layers("encoder"),
            "n_vocab": v["decoder/embeddings/weight"].shape[0],
            "n_text_ctx": v["decoder/position_encodings/encodings"].shape[0],
            "n_text_state": v["decoder/embeddings/weight"].shape[1],
            "n_text_head": int(v["decoder/num_heads"]),
            "n_text_layer": layers("decoder"),
        }
    except KeyError as exc:
        raise ConversionError(f"model.bin lacks {exc}") from exc
    return {k: int(n) for k, n in dims.items()}


def whisper_weights(
    variables: dict[str, np.ndarray], aliases: dict[str, str], dims: dict[str, int]
) -> dict[str, np.ndarray]:
    """Every CTranslate2 variable as a float32 tensor named as in openai-whisper's (and
    mlx-whisper's) Whisper, convolutions (out, in, width) as PyTorch has them; fails on any
    variable left over, so nothing is silently dropped."""
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        used.add(name)
        stored = aliases.get(name, name)  # optimize() aliases variables with equal values
        if stored not in variables:
            raise ConversionError(f"model.bin lacks {name}")
        value = variables[stored]
        if f"{name}_scale" in variables:  # int8/int16 quantized: CTranslate2 stores q * scale
            used.add(f"{name}_scale")
            scale = variables[f"{name}_scale"].astype(np.float32)
            value = value.astype(np.float32) / scale.reshape(scale.shape + (1,) * (value.ndim - 1))
        return value.astype(np.float32)

    out: dict[str, np.ndarray] = {}

    def linear(src: str, dst: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = take(f"{src}/weight"), take(f"{src}/bias")

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = take(f"{src}/gamma"), take(f"{src}/beta")

    def fused(src: str, parts: list[tuple[str, bool]]) -> None:
        """Split a fused projection (q;k;v or k;v); mlx-whisper's key has no bias, so the
        key's slice of the fused bias must be zero."""
        weights = np.split(take(f"{src}/weight"), len(parts))
        biases = np.split(take(f"{src}/bias"), len(parts))
        for (dst, has_bias), w, b in zip(parts, weights, biases, strict=True):
            out[f"{dst}.weight"] = w
            if has_bias:
                out[f"{dst}.bias"] = b
            elif np.any(b):
                raise ConversionError(f"{src}: {dst} has a non-zero bias")

    def block(src: str, dst: str, attn: str, cross: str | None) -> None:
        norm(f"{src}/{attn}/layer_norm", f"{dst}.attn_ln")
        qkv = [(f"{dst}.attn.query", True), (f"{dst}.attn.key", False), (f"{dst}.attn.value", True)]
        fused(f"{src}/{attn}/linear_0", qkv)
        linear(f"{src}/{attn}/linear_1", f"{dst}.attn.out")
        if cross is not None:
            norm(f"{src}/{cross}/layer_norm", f"{dst}.cross_attn_ln")
            linear(f"{src}/{cross}/linear_0", f"{dst}.cross_attn.query")
            kv = [(f"{dst}.cross_attn.key", False), (f"{dst}.cross_attn.value", True)]
            fused(f"{src}/{cross}/linear_1", kv)
            linear(f"{src}/{cross}/linear_2", f"{dst}.cross_attn.out")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp1")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp2")

    for conv in ("conv1", "conv2"):
        out[f"encoder.{conv}.weight"] = take(f"encoder/{conv}/weight")
        out[f"encoder.{conv}.bias"] = take(f"encoder/{conv}/bias")
    out["encoder.positional_embedding"] = take("encoder/position_encodings/encodings")
    for i in range(dims["n_audio_layer"]):
        block(f"encoder/layer_{i}", f"encoder.blocks.{i}", "self_attention", None)
    norm("encoder/layer_norm", "encoder.ln_post")
    out["decoder.token_embedding.weight"] = take("decoder/embeddings/weight")
    out["decoder.positional_embedding"] = take("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        block(f"decoder/layer_{i}", f"decoder.blocks.{i}", "self_attention", "attention")
    norm("decoder/layer_norm", "decoder.ln")
    _check_tied_projection(variables, aliases, used)
    for flag, wanted in _REQUIRED_FLAGS.items():
        if flag in variables and int(take(flag)) != wanted:
            raise ConversionError(f"{flag} = {int(variables[flag])}; Whisper needs {wanted}")
    used |= {"encoder/num_heads", "decoder/num_heads"} | (_RUNTIME_ONLY & variables.keys())
    if unmapped := sorted((variables.keys() | aliases.keys()) - used):
        raise ConversionError(f"CTranslate2 variables with no Whisper counterpart: {unmapped}")
    return out


def _check_tied_projection(
    variables: dict[str, np.ndarray], aliases: dict[str, str], used: set[str]
) -> None:
    """Whisper's logits reuse the token embedding; the model must agree (a projection bias
    would be left unmapped and refused)."""
    name, embeddings = "decoder/projection/weight", "decoder/embeddings/weight"
    stored = variables.get(name)
    if aliases.get(name) != embeddings and not (
        stored is not None and np.array_equal(stored, variables[embeddings])
    ):
        raise ConversionError("the output projection is not tied to the token embedding")
    used.add(name)


def check_layout(weights: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """The converted tensors have exactly the target model's names and shapes."""
    got = {k: tuple(a.shape) for k, a in weights.items()}
    missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
    if missing or extra or wrong:
        raise ConversionError(
            f"layout mismatch: missing {missing}, unexpected {extra}, shape {wrong}"
        )


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> np.ndarray:
    """Whisper's encoder position table (openai-whisper's formula)."""
    increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = np.exp(-increment * np.arange(channels // 2, dtype=np.float32))
    scaled = np.arange(length, dtype=np.float32)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


def check_sinusoids(encodings: np.ndarray) -> None:
    """Runtimes that compute the encoder positions themselves need the stored ones to be
    Whisper's."""
    error = float(np.abs(encodings - sinusoids(*encodings.shape)).max())
    if error > 2e-3:  # float16 storage rounds by up to ~5e-4
        raise ConversionError(f"encoder positions are not Whisper's sinusoids (error {error})")


def alignment_heads(config: dict[str, Any], dims: dict[str, int]) -> np.ndarray:
    heads = config.get("alignment_heads") or [
        [layer, head]
        for layer in range(dims["n_text_layer"] // 2, dims["n_text_layer"])
        for head in range(dims["n_text_head"])
    ]  # CTranslate2's and mlx-whisper's default: every head of the last half of the layers
    array = np.asarray(heads, dtype=np.int64).reshape(-1, 2)
    limits = np.array([dims["n_text_layer"], dims["n_text_head"]])
    if not (len(array) and ((array >= 0) & (array < limits)).all()):
        raise ConversionError(f"alignment heads {heads} do not fit the decoder")
    return array


def check_vocabulary(path: Path, n_vocab: int) -> None:
    """A vocabulary that does not match the embedding would silently decode to the wrong
    text."""
    if path.is_file():
        count = len(path.read_bytes().rstrip(b"\n").split(b"\n"))
        if count != n_vocab:
            raise ConversionError(f"vocabulary.txt has {count} tokens, the model {n_vocab}")


def _unpack(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ConversionError("model.bin is truncated")
    return struct.unpack(fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    return f.read(_unpack(f, "H"))[:-1].decode("utf-8")  # written with a trailing NUL
