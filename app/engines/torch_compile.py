"""Whisper's encoder through torch.compile (Inductor), for any batch of windows.

Why: the encoder is three quarters of a batch's time for turbo-shaped models, and compiled
it ran 30 % faster on the H100 (bench/gpu/engine_breakdown.py: large-v3-turbo, 116 windows,
0.80 s eager -> 0.56 s), mostly from fused normalisation, activation and residual kernels.

How: one graph serves every batch size. The batch dimension is marked dynamic; a batch of
one window is sent as two (PyTorch specialises size 1 into a graph of its own, which would
be a second ~30 s compile in the middle of a request), and every input is copied into a
tensor of one kind (a tensor made outside inference mode fails the graph's guards). The
graph is compiled and run once when the model loads, so no request waits for it. Anything
that fails here (no C compiler, no Triton, an unsupported operation) leaves the encoder as
it was, and the log says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

Encode = Callable[[torch.Tensor], torch.Tensor]


def compiled_encoder(encoder: Any, n_mels: int, frames: int) -> Encode | None:
    """`encoder`: transformers' WhisperEncoder (on its device, in its dtype). Returns a
    function from features (windows, n_mels, frames; any float dtype) to encoder states,
    compiled and warmed up; None when compiling failed (logged)."""
    compiled = torch.compile(encoder)

    weight = next(encoder.parameters())

    @torch.inference_mode()
    def encode(mels: torch.Tensor) -> torch.Tensor:
        # Always a fresh tensor made here, in the encoder's dtype (the copy converts): one
        # kind of tensor (an inference tensor, contiguous) whoever calls, so the graph's
        # guards hold and nothing recompiles.
        rows = mels.shape[0]
        batch = torch.empty((max(rows, 2), *mels.shape[1:]), dtype=weight.dtype, device=mels.device)
        batch[:rows] = mels
        batch[rows:] = mels[:1]
        torch._dynamo.mark_dynamic(batch, 0)
        return compiled(batch).last_hidden_state[:rows]

    started = time.perf_counter()
    try:
        for rows in (2, 3, 1):  # the first compiles; the others must reuse its graph
            encode(torch.zeros(rows, n_mels, frames, dtype=weight.dtype, device=weight.device))
    except Exception as exc:  # any compiler failure: the eager encoder still works
        log.warning("torch.compile of the encoder failed; it runs uncompiled: %s", exc)
        return None
    log.info("encoder compiled with torch.compile in %.1f s", time.perf_counter() - started)
    return encode
