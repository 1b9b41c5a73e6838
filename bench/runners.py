"""The three ways of running one model on one clip: through our HTTP service, through
faster-whisper's WhisperModel in this process, and through its BatchedInferencePipeline.

Each runner's `transcribe(clip)` returns (wall seconds, transcript text). The in-process
runners use the decoding settings the service uses for a plain /asr request (DecodeOptions'
defaults with word timestamps on, the same temperature schedule, beam size and VAD), so any
difference in time or text is the service's own doing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from clips import Clip, read_mono_16k

from app.domain import DecodeOptions
from app.engines.base import temperature_schedule
from app.engines.ctranslate2_engine import decode_kwargs, resolve_compute_type, resolve_device

# What /asr decodes with when a request sets nothing but the file (app/api/asr.py).
SERVICE_DEFAULTS = DecodeOptions(word_timestamps=True, vad_filter=True)


@dataclass(frozen=True)
class Engine:
    """Where and how a model runs: resolved the way the service resolves DEVICE and
    COMPUTE_TYPE, so `auto` means the same thing on both sides."""

    device: str
    compute_type: str
    cpu_threads: int

    @classmethod
    def resolve(cls, device: str, compute_type: str) -> Engine:
        dev = resolve_device(device)
        # CPU_THREADS=0 in the service means one thread per core; do the same here.
        return cls(dev, resolve_compute_type(compute_type, dev), os.cpu_count() or 1)


def load_audio(clip: Clip) -> np.ndarray:
    """16 kHz mono float32, decoded with PyAV as the service does. (faster-whisper 1.2.1's
    own decode_audio passes an argument PyAV 19 no longer accepts, so it cannot be used.)"""
    return read_mono_16k(clip.path).astype(np.float32) / 32768.0


def _decode_kwargs(options: DecodeOptions) -> dict[str, Any]:
    return decode_kwargs(options)  # exactly what the service passes to faster-whisper


class InProcessRunner:
    """faster-whisper called directly: WhisperModel (batch_size 1) or the batched pipeline."""

    def __init__(self, model_path: str, engine: Engine, batch_size: int = 1) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.model = WhisperModel(
            model_path,
            device=engine.device,
            compute_type=engine.compute_type,
            cpu_threads=engine.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
        self.batch_size = batch_size
        self._batched = BatchedInferencePipeline(self.model) if batch_size > 1 else None
        self.label = f"in-process batched bs={batch_size}" if batch_size > 1 else "in-process"

    def transcribe(self, clip: Clip) -> tuple[float, str]:
        started = time.perf_counter()
        samples = load_audio(clip)
        kwargs = _decode_kwargs(SERVICE_DEFAULTS)
        temperatures = temperature_schedule(SERVICE_DEFAULTS.temperature)
        if self._batched is not None:
            # As the service does with BATCH_SIZE > 1: one temperature per chunk.
            segments, _ = self._batched.transcribe(
                samples, batch_size=self.batch_size, temperature=temperatures[0], **kwargs
            )
        else:
            segments, _ = self.model.transcribe(samples, temperature=list(temperatures), **kwargs)
        text = "".join(s.text for s in segments)  # the generator decodes as it is consumed
        return time.perf_counter() - started, text.strip()

    def close(self) -> None:
        self._batched = None
        del self.model
