"""Pick the ASR engine: MLX on Apple Silicon, CTranslate2 elsewhere; ASR_ENGINE overrides
(`torch` only when asked for)."""

from __future__ import annotations

import platform
import sys

from app.config import Settings
from app.engines.base import Engine
from app.errors import EngineUnavailable

_TORCH_BATCH = 16  # windows per torch engine batch (the pipeline hands it 4 at a time)


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def engine_name(settings: Settings) -> str:
    if settings.asr_engine != "auto":
        return settings.asr_engine
    return "mlx" if is_apple_silicon() else "ctranslate2"


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
        return TorchEngine(settings.cache_dir, settings.device, settings.compute_type, _TORCH_BATCH)
    from app.engines.mlx_engine import MLXEngine  # imports MLX only when constructed

    try:
        return MLXEngine(settings.cache_dir, settings.device, settings.compute_type)
    except ImportError as exc:
        raise EngineUnavailable(
            f"ASR_ENGINE=mlx needs MLX and mlx-whisper ({exc}); install them with "
            "`uv sync --extra mlx`, or use ASR_ENGINE=ctranslate2."
        ) from exc
