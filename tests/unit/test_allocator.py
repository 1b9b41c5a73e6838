"""The malloc settings are applied on glibc, and an operator's own MALLOC_* settings win."""

from __future__ import annotations

import ctypes
import os
import platform

import pytest

from app.allocator import tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert tune_malloc()
    # Still a working allocator: a buffer above the mmap threshold comes and goes.
    buffer = ctypes.create_string_buffer(64 << 20)
    buffer[-1] = b"x"
    assert buffer[-1] == b"x"


def test_operator_settings_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert not tune_malloc()
