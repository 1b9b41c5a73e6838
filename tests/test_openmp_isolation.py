"""The service process keeps CTranslate2's OpenMP runtime apart from torch's.

Loaded after torch, CTranslate2's OpenMP calls bind to torch's libgomp: the two then share
one runtime, and diarization after a transcription ran 3-5x slower (bench/RESULTS.md).
`app/main.py` loads CTranslate2 first. Shared state is visible through the thread count:
`WhisperModel(cpu_threads=1)` sets OpenMP's to 1, which torch then reports as its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import torch
from faster_whisper import WhisperModel
before = torch.get_num_threads()
WhisperModel({model!r}, device="cpu", compute_type="int8", cpu_threads=1)
print(before, torch.get_num_threads())
"""


def threads(tiny_en: Path, first: str) -> tuple[int, int]:
    code = first + "\n" + PROBE.format(model=str(tiny_en))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CACHE_DIR": str(tiny_en.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split()[-2:])
    return before, after


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one OpenMP thread either way")
def test_the_service_process_keeps_ctranslate2_openmp_apart(tiny_en: Path) -> None:
    # The control: torch first, as any other entry point would load them, shares the state.
    before, after = threads(tiny_en, "import torch")
    assert before > 1 and after == 1
    # The service's entry point: CTranslate2 first, torch keeps its threads.
    before, after = threads(tiny_en, "import app.main")
    assert before > 1 and after == before
