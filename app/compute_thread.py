"""One long-lived thread for a native library's work, shared by every request.

Why torch needs it: PyTorch's CPU kernels run in OpenMP (libgomp) teams, and libgomp keeps
one pool of worker threads per *calling* thread. Worker threads from asyncio's pool each
grew a pool of their own, so the process soon held more OpenMP threads than cores; libgomp
then stops spinning between parallel regions and sleeps on a futex instead. An LSTM runs
thousands of tiny regions, so diarization went from 6.5 s to 21-26 s per 300 s span on 2
cores (20,000 context switches a second per thread, measured with bench/timeline.py), and
whether a request hit it depended on which pool thread it happened to land on. On one
thread there is one pool, as many OpenMP threads as cores, and every span takes 6.5 s.

Requests' torch stages queue here one after another, which on a CPU is no loss (two
diarizations side by side would share the same cores). On a GPU the torch engine's ASR
batches get a thread of their own (app/stack.py), so that no window waits behind a
diarization, and the diarization thread issues its kernels on a CUDA stream of its own, so
that they overlap with ASR's instead of queueing behind them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


def own_cuda_stream() -> None:
    """A ComputeThread initializer: this thread's CUDA work goes to a stream of its own (a
    non-blocking one, from torch's pool), not the default stream other threads use."""
    import torch

    torch.cuda.set_stream(torch.cuda.Stream())


class ComputeThread:
    def __init__(self, name: str, initializer: Callable[[], None] | None = None) -> None:
        """`initializer` runs on the thread before its first work (a CUDA stream of its
        own: `own_cuda_stream`)."""
        self.name = name
        self._ident: int | None = None
        self._initializer = initializer
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name, initializer=self._start
        )

    def _start(self) -> None:
        self._ident = threading.get_ident()
        if self._initializer is not None:
            self._initializer()

    def is_current(self) -> bool:
        """Whether the caller runs on this thread."""
        return threading.get_ident() == self._ident

    def submit[T](self, work: Callable[[], T]) -> Future[T]:
        """Queue `work` on this thread without waiting for it."""
        return self._executor.submit(work)

    def run[T](self, work: Callable[[], T]) -> T:
        """Run `work` on this thread and wait for it; its exception is raised here. Called
        from this thread itself (a stage inside a stage), it runs in place."""
        if self.is_current():
            return work()
        return self._executor.submit(work).result()

    def close(self) -> None:
        """Take no more work; queued work is cancelled (its callers get CancelledError),
        running work finishes."""
        self._executor.shutdown(wait=False, cancel_futures=True)
