"""The compiled encoder's fallback: when torch.compile fails, the engine keeps its encoder
and says so in the log (no request may fail because a compiler is missing)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from app.engines import torch_compile


class _Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, mels: torch.Tensor) -> Any:
        raise AssertionError("not called: the compiled function fails first")


def test_a_failing_compile_leaves_the_encoder_uncompiled_and_logs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(module: Any) -> Any:
        def run(mels: torch.Tensor) -> Any:
            raise RuntimeError("no working C compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="app.engines.torch_compile"):
        assert torch_compile.compiled_encoder(_Encoder(), n_mels=4, frames=10) is None
    assert "runs uncompiled" in caplog.text and "no working C compiler" in caplog.text
