"""glibc malloc settings for a server whose stages allocate and free large buffers.

With glibc's defaults the ASR stage paid for its big, short-lived buffers over and over:
CTranslate2's worker threads allocate in arenas of their own, whose heaps are at most
64 MiB and are unmapped as soon as they empty, and anything above the 32 MiB mmap
threshold is mapped and unmapped per call, so every window faulted fresh zeroed pages in
again (base, 10 minutes of speech: 3.2 million page faults, 13 GB of pages touched, 16 s
of kernel time; bench/timeline.py). One arena for every thread, an mmap threshold of
256 MiB and a trim threshold of 256 MiB keep those buffers in one heap for reuse: 47,000
faults, and the ASR peak fell from 1547 to 1414 MiB, because buffers freed by one thread
are reused by the next instead of being held per arena. Between stages (after ASR,
alignment and each diarization span) `release_free_memory` hands what the stage freed
back at once, so the high thresholds only help within a stage.

The arena count only binds threads that start after it is set, so the ASGI entry point
(app/main.py) applies this before anything else is imported; the app's lifespan applies it
again for apps built in-process. One arena means one lock: with a few busy threads per
core (the engines' own pools do the parallel work) it is not contended. An operator who
sets any of glibc's MALLOC_* variables or GLIBC_TUNABLES keeps glibc as set.
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
MMAP_THRESHOLD_BYTES = 256 << 20  # a glibc that refuses more than 32 MiB keeps its own (logged)
ARENA_MAX = 1


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
    settings = {
        "mmap threshold": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        "trim threshold": (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        "arena max": (_M_ARENA_MAX, ARENA_MAX),
    }
    refused = [name for name, (option, value) in settings.items() if mallopt(option, value) != 1]
    if refused:
        log.warning("malloc: glibc refused the %s setting; its default stays", ", ".join(refused))
    return not refused
