"""glibc malloc settings for a server whose stages allocate and free large buffers.

With glibc's defaults, every request paid twice for its big, short-lived buffers (speech
blocks, network activations): freed memory at the top of the heap is handed back to the
kernel at once (trim threshold 128 KiB, adjusted upwards only after an mmap'd chunk is
freed), and the next allocation of the same size faults fresh zeroed pages in again. In
the diarization stage, whose LSTM frees and reallocates such buffers step after step, that
churn was half the CPU time: 20 s instead of 6.5 s per 300 s span on 2 cores (bench, tiny.en
server, 10-minute clip). A high trim threshold keeps up to 256 MiB of freed heap for
reuse; a fixed 32 MiB mmap threshold (glibc's own upper bound) keeps anything bigger out of
the heap, where it is returned to the kernel as soon as it is freed. Four arenas, instead
of eight per core, bound the memory held by idle worker threads' arenas. Between stages
(after ASR, alignment and each diarization span) `release_free_memory` hands what the
stage freed back at once, so the high threshold only helps within a stage.

An operator who sets any of glibc's MALLOC_* variables or GLIBC_TUNABLES keeps glibc as set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
TRIM_THRESHOLD_BYTES = 256 << 20
MMAP_THRESHOLD_BYTES = 32 << 20
ARENA_MAX = 4


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_free_memory() -> None:
    """Hand freed heap pages back to the kernel (glibc's malloc_trim) between stages, so
    what one stage freed is not still resident while the next one allocates its own."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def tune_malloc() -> bool:
    """Apply the settings above to this process; False where not glibc or the operator
    chose their own."""
    if "GLIBC_TUNABLES" in os.environ or any(n.startswith("MALLOC_") for n in os.environ):
        log.info("malloc: leaving the operator's MALLOC_*/GLIBC_TUNABLES settings in place")
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:  # not Linux, or musl or another libc: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = all(
        mallopt(option, value) == 1
        for option, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (_M_ARENA_MAX, ARENA_MAX),
        )
    )
    if not applied:
        log.warning("malloc: glibc refused a setting; running on its defaults")
    return applied
