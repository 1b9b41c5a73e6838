"""Pick the ASR engine: MLX on Apple Silicon, torch on an NVIDIA GPU, CTranslate2 on other
CPUs; ASR_ENGINE overrides.

Why torch on CUDA: measured through the service on an H100 (bench/RESULTS.md, run of
2026-11-25), the window scheduler fed the torch engine at 488x real time for the bundled
base with 64 clients, while the CTranslate2 window decoder on the GPU managed 13-54x.
CTranslate2 int8 stays the CPU engine (the fastest CPU path)."""

from __future__ import annotations

import platform
import sys

from app.config import Settings
from app.engines.base import Engine
from app.errors import EngineUnavailable

# Windows per torch batch when a request is decoded without the scheduler (MAX_BATCH_WINDOWS=0,
# blocks of 4); with it, each scheduler batch is one engine batch.
_TORCH_BATCH = 16


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch comes with the diarization stack
        return False
    return bool(torch.cuda.is_available())


def engine_name(settings: Settings) -> str:
    if settings.asr_engine != "auto":
        return settings.asr_engine
    if is_apple_silicon():
        return "mlx"
    if settings.device in ("auto", "cuda") and cuda_available():
        return "torch"
    return "ctranslate2"


def build_engine(settings: Settings) -> Engine:
    name = engine_name(settings)
    if name == "ctranslate2":
        try:
            from app.engines.ctranslate2_engine import CTranslate2Engine
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EngineUnavailable(
                f"ASR_ENGINE=ctranslate2 needs faster-whisper installed ({exc})."
            ) from exc
        return CTranslate2Engine(
            settings.device,
            settings.compute_type,
            settings.batch_size,
            settings.cpu_threads,
            settings.gpu_concurrency,
        )
    if name == "torch":
        try:
            from app.engines.torch_engine import TorchEngine
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EngineUnavailable(
                f"ASR_ENGINE=torch needs torch and transformers ({exc})."
            ) from exc
        return TorchEngine(
            settings.cache_dir,
            settings.device,
            settings.compute_type,
            _TORCH_BATCH,
            settings.torch_compile,
        )
    from app.engines.mlx_engine import MLXEngine  # imports MLX only when constructed

    try:
        return MLXEngine(settings.cache_dir, settings.device, settings.compute_type)
    except ImportError as exc:
        raise EngineUnavailable(
            f"ASR_ENGINE=mlx needs MLX and mlx-whisper ({exc}); install them with "
            "`uv sync --extra mlx`, or use ASR_ENGINE=ctranslate2."
        ) from exc
