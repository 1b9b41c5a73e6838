"""CAM++ on a CUDA device, replayed from CUDA graphs.

In eager torch a CAM++ call is ~300 small kernels, each launched from Python: on an H200 the
stage was launch-bound (17,490 conv1d calls, 0.37 ms each, for 6 minutes of speech;
bench/RESULTS.md). A CUDA graph launches the whole network at once. A graph holds one input
shape, so the crops come in few shapes: their lengths trimmed to `BUCKETS` (lose at most
an eighth of a crop, from its ends; `bucket_frames`), their rows padded up to a power of
two (rows are independent in eval mode: the padding is computed and thrown away).

Graphs are captured on first use of a shape (or by `warm`) and share one memory pool; they
are replayed one at a time (a lock), each output copied out before the next replay.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

log = logging.getLogger(__name__)

Precision = Literal["fp32", "tf32", "bf16"]

BUCKETS = (48, 54, 61, 69, 77, 87, 98, 110, 124, 139, 156, 176, 198, 223, 250, 281, 298)
"""Crop lengths in filterbank frames (10 ms): ~1/8 apart from 0.5 s (the shortest crop
embedded) to 3 s (the longest, the recipe's `longest_s`)."""

_ROWS = (8, 16, 32, 64, 128)


def bucket_frames(frames: int) -> int:
    """The longest bucket not longer than `frames` (past the last one: multiples of 32,
    still within an eighth)."""
    if frames > BUCKETS[-1]:
        return frames - frames % 32
    fitting = [b for b in BUCKETS if b <= frames]
    return fitting[-1] if fitting else frames


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: torch.Tensor
    outputs: torch.Tensor


class GraphedCampPlus:
    """(batch, frames, 80) CPU filterbanks -> (batch, 192) CPU embeddings, like the ONNX
    runner: `model` (on a CUDA device) replayed from a graph per (rows, frames)."""

    def __init__(self, model: Any, precision: Precision = "tf32") -> None:
        self.model = model
        self.precision = precision
        self.max_rows = _ROWS[-1]
        self._graphs: dict[tuple[int, int], _Graph | None] = {}
        self._pool: Any = None
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        parts = []
        with self._lock:
            for start in range(0, len(feats), self.max_rows):
                part = feats[start : start + self.max_rows]
                graph = self._graph(_rows_for(len(part)), part.shape[1])
                if graph is None:  # its capture failed (logged): eager
                    parts.append(self.model(part.to(self.device)).float().cpu())
                    continue
                graph.inputs[: len(part)].copy_(part)
                graph.graph.replay()
                parts.append(graph.outputs[: len(part)].float().cpu())
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def warm(self, frames: tuple[int, ...] = BUCKETS) -> None:
        """Capture every (rows, frames) graph now rather than inside a request."""
        with self._lock, torch.inference_mode():
            for length in frames:
                for rows in _ROWS:
                    self._graph(rows, length)

    @property
    def captured(self) -> int:
        return sum(graph is not None for graph in self._graphs.values())

    def _graph(self, rows: int, frames: int) -> _Graph | None:
        key = (rows, frames)
        if key not in self._graphs:
            try:
                self._graphs[key] = self._capture(rows, frames)
            except RuntimeError as exc:  # a driver or allocator that refuses: eager
                log.warning("CAM++ CUDA graph for %s not captured, eager: %s", key, exc)
                self._graphs[key] = None
        return self._graphs[key]

    def _capture(self, rows: int, frames: int) -> _Graph:
        device = self.device
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        inputs = torch.zeros(rows, frames, 80, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with _precision(self.precision):
            with torch.cuda.stream(side):  # warm-up: cuDNN picks its kernels outside capture
                for _ in range(2):
                    self.model(inputs)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: ASR on other threads may touch CUDA meanwhile
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                outputs = self.model(inputs)
        return _Graph(graph, inputs, outputs)


def _rows_for(count: int) -> int:
    return next(rows for rows in _ROWS if rows >= count)


def _precision(precision: Precision) -> AbstractContextManager[Any]:
    """What the captured kernels compute in. TF32 is a process-wide switch (pyannote turns
    it off on import): on while capturing only; the captured kernels keep it."""
    if precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if precision == "tf32":
        return _Tf32()
    return nullcontext()


class _Tf32:
    def __enter__(self) -> None:
        self._saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    def __exit__(self, *exc: object) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved
