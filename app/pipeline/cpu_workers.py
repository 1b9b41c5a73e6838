"""CPU work that holds Python's GIL, in worker processes: decoding uploads, and PocketSphinx
word alignment (its Cython calls hold the GIL: two alignments in two threads took twice as
long as one on two idle cores).

PyAV's decode loop holds the GIL for much of its time (a Python call per codec frame and per
resampled block): in threads, four concurrent 10-minute decodes took 1.71 s on two cores
where one took 0.14 s, and on a GPU server every such loop also delays the scheduler
thread that feeds the engine. Worker processes (spawned, never forked: the server holds
threads and maybe a CUDA context) decode into the request's PCM file and send back only
the file's name, or the request's error with its message and parameter.

`processes=0` runs everything in the calling thread, as before.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import ParamSpec, TypeVar

from app.pipeline.decode import decode_to_pcm
from app.pipeline.pcm import PcmFile

log = logging.getLogger(__name__)

_MAX_AUTO_PROCESSES = 8
P = ParamSpec("P")
T = TypeVar("T")


def auto_processes(setting: int) -> int:
    """DECODE_PROCESSES resolved: -1 = half the CPU cores, 1 to 8."""
    if setting >= 0:
        return setting
    return max(1, min(_MAX_AUTO_PROCESSES, (os.cpu_count() or 2) // 2))


class CpuWorkers:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = self._new_pool() if processes > 0 else None
        self._lock = threading.Lock()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes, mp_context=multiprocessing.get_context("spawn")
        )

    def warm_up(self) -> None:
        """Start the workers and import the decoder in each now, not on the first request."""
        if self._pool is not None:
            for future in [self._pool.submit(_ready) for _ in range(self.processes)]:
                future.result()

    def decode(
        self,
        src: Path,
        dst: Path,
        *,
        encoded: bool = True,
        max_duration_s: float = math.inf,
        head_s: float = math.inf,
    ) -> PcmFile:
        """`decode_to_pcm` in a worker process (or here when there are none): the same
        file, the same errors."""
        return self.run(
            decode_to_pcm, src, dst, encoded=encoded, max_duration_s=max_duration_s, head_s=head_s
        )

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn` (a module-level function, its arguments picklable) in a worker process, or
        here when there are none. Blocks the calling thread until it returns."""
        pool = self._pool
        if pool is None:
            return fn(*args, **kwargs)
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            self._replace(pool)
            raise

    def map(self, fn: Callable[..., T], calls: Sequence[tuple[object, ...]]) -> list[T]:
        """`fn(*call)` for every call, spread over the workers at once (or one after
        another here when there are none); the results in the calls' order."""
        pool = self._pool
        if pool is None:
            return [fn(*call) for call in calls]
        try:
            futures = [pool.submit(fn, *call) for call in calls]
            return [future.result() for future in futures]
        except BrokenProcessPool:
            self._replace(pool)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """A worker that died (killed, or crashed in native code) breaks the whole pool and
        every call after it: the failed call raises, the next ones get a new pool."""
        with self._lock:
            if self._pool is broken:
                log.error("a CPU worker process died; starting a new pool of %d", self.processes)
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ready() -> int:
    return os.getpid()
