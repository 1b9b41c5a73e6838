"""Accelerator memory in use, for the whisperx_vram_allocated_bytes gauge."""

from __future__ import annotations

import sys

from app.engines.base import Engine


def accelerator_memory_bytes(engine: Engine) -> int:
    """Device memory in use on the engine's accelerator; 0 on CPU.

    CUDA: total minus free device memory (CTranslate2 allocates outside torch's allocator,
    so torch.cuda.memory_allocated would miss the Whisper model). MLX: active memory.
    """
    if engine.device == "cuda":
        try:
            import torch

            free, total = torch.cuda.mem_get_info()
            return int(total - free)
        except Exception:  # no CUDA runtime in this process: report nothing rather than fail
            return 0
    if engine.name == "mlx" and "mlx.core" in sys.modules:
        import mlx.core as mx

        return int(mx.get_active_memory())
    return 0
