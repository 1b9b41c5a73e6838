"""Admission: a bounded wait queue in front of a semaphore of GPU_CONCURRENCY permits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from app.errors import QueueFull


@dataclass
class AdmissionStats:
    queued: int = 0
    running: int = 0
    completed: int = 0
    rejected: int = 0
    total_wait_s: float = 0.0
    max_wait_s: float = 0.0


class Admission:
    def __init__(self, concurrency: int, max_queue: int) -> None:
        self.capacity = concurrency
        self.max_queue = max_queue
        self._semaphore = asyncio.Semaphore(concurrency)
        self.stats = AdmissionStats()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Wait for a permit (yields the seconds waited). Raises QueueFull past max_queue.
        A cancelled waiter (client gone) leaves the queue without running."""
        stats = self.stats
        if self._semaphore.locked() and stats.queued >= self.max_queue:
            stats.rejected += 1
            raise QueueFull(
                f"The server is busy: {stats.running} transcription(s) running and "
                f"{stats.queued} waiting (MAX_QUEUE_SIZE={self.max_queue}). Retry later."
            )
        started = time.monotonic()
        stats.queued += 1
        try:
            await self._semaphore.acquire()
        finally:
            stats.queued -= 1
        waited = time.monotonic() - started
        stats.total_wait_s += waited
        stats.max_wait_s = max(stats.max_wait_s, waited)
        stats.running += 1
        try:
            yield waited
        finally:
            stats.running -= 1
            stats.completed += 1
            self._semaphore.release()
