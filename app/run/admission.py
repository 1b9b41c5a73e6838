"""Admission: a bounded wait queue in front of a semaphore of GPU_CONCURRENCY permits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from app.errors import ClientGone, QueueFull

# How often a queued request checks whether its client is still connected.
_DISCONNECT_POLL_S = 0.25


@dataclass
class AdmissionStats:
    queued: int = 0
    running: int = 0
    peak_running: int = 0
    completed: int = 0
    rejected: int = 0
    abandoned: int = 0
    total_wait_s: float = 0.0
    max_wait_s: float = 0.0

    @property
    def admitted(self) -> int:
        """Requests that got a permit: the finished ones and the running ones."""
        return self.completed + self.running


class Admission:
    def __init__(
        self, concurrency: int, max_queue: int, on_reject: Callable[[], None] | None = None
    ) -> None:
        self.capacity = concurrency
        self.max_queue = max_queue
        self._semaphore = asyncio.Semaphore(concurrency)
        self._on_reject = on_reject or (lambda: None)
        self.stats = AdmissionStats()

    def retry_after_s(self) -> int:
        return max(1, min(60, 5 * (self.stats.queued + 1) // self.capacity))

    @asynccontextmanager
    async def slot(
        self,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        *,
        queue_limit: bool = True,
    ) -> AsyncIterator[float]:
        """Wait for a permit; yields the seconds waited. Raises QueueFull past max_queue
        (unless `queue_limit` is off: jobs wait in their store) and ClientGone when the
        client disconnects while still queued (its work never runs)."""
        stats = self.stats
        if queue_limit and self._semaphore.locked() and stats.queued >= self.max_queue:
            stats.rejected += 1
            self._on_reject()
            raise QueueFull(
                f"The server is busy: {stats.running} transcription(s) running and "
                f"{stats.queued} waiting (MAX_QUEUE_SIZE={self.max_queue}). Retry later.",
                retry_after_s=self.retry_after_s(),
            )
        started = time.monotonic()
        stats.queued += 1
        try:
            await self._acquire(disconnected)
        except ClientGone:
            stats.abandoned += 1
            raise
        finally:
            stats.queued -= 1
        waited = time.monotonic() - started
        stats.total_wait_s += waited
        stats.max_wait_s = max(stats.max_wait_s, waited)
        stats.running += 1
        stats.peak_running = max(stats.peak_running, stats.running)
        try:
            yield waited
        finally:
            stats.running -= 1
            stats.completed += 1
            self._semaphore.release()

    async def _acquire(self, disconnected: Callable[[], Awaitable[bool]] | None) -> None:
        if disconnected is None or not self._semaphore.locked():
            await self._semaphore.acquire()
            return
        acquire = asyncio.ensure_future(self._semaphore.acquire())
        try:
            while True:
                done, _ = await asyncio.wait({acquire}, timeout=_DISCONNECT_POLL_S)
                if done:
                    return
                if await disconnected():
                    raise ClientGone("The client disconnected while queued.")
        except BaseException:
            acquire.cancel()  # a no-op when the permit was already granted
            with suppress(asyncio.CancelledError):
                await acquire
            if not acquire.cancelled():
                self._semaphore.release()  # granted in the same instant: hand it back
            raise
