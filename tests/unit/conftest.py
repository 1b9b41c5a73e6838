from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment() -> Iterator[None]:
    """The app exports HF_* variables for huggingface_hub; keep tests from leaking them."""
    saved = dict(os.environ)
    for key in ("HF_HUB_OFFLINE", "PRELOAD_MODEL", "OPENAI_WHISPER1_MODEL", "HF_HOME"):
        os.environ.pop(key, None)
    yield
    os.environ.clear()
    os.environ.update(saved)
