"""Model folders for the converter tests: the bundled CTranslate2 models, and model.bin
files written the way CTranslate2 writes them (to test what a converter refuses)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from app.config import Settings
from app.models.hub import HubClient
from app.models.registry import ModelRegistry


def bundled_model(name: str, cache: Path) -> Path:
    settings = Settings(_env_file=None, cache_dir=cache, hf_hub_offline=True)
    path = ModelRegistry(settings, HubClient(settings)).resolve(name).path
    assert path is not None
    return path


def write_model_bin(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """model.bin as ctranslate2/specs/model_spec.py writes it (binary version 6)."""
    type_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2}

    def string(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("H", len(raw)) + raw

    parts = [struct.pack("I", 6), string("WhisperSpec"), struct.pack("II", 3, len(variables))]
    for name, value in variables.items():
        parts += [string(name), struct.pack("B", value.ndim)]
        parts += [struct.pack("I", d) for d in value.shape]
        parts += [struct.pack("B", type_ids[value.dtype]), struct.pack("I", value.nbytes)]
        parts.append(value.tobytes())
    parts.append(struct.pack("I", len(aliases)))
    parts += [string(alias) + string(target) for alias, target in aliases.items()]
    path.write_bytes(b"".join(parts))
