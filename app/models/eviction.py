"""Idle-model eviction: a background sweep every interval, plus a cheap sweep per request."""

from __future__ import annotations

import asyncio
import logging

from app.metrics import Metrics
from app.models.cache import ModelCache

log = logging.getLogger(__name__)


class IdleEvictor:
    def __init__(
        self, cache: ModelCache, metrics: Metrics, keep_alive_s: float, interval_s: float
    ) -> None:
        self._cache = cache
        self._metrics = metrics
        self.keep_alive_s = keep_alive_s
        self.interval_s = interval_s

    @property
    def enabled(self) -> bool:
        return self.keep_alive_s > 0

    def sweep(self) -> list[str]:
        """Unload what has been idle too long (blocking: call from a worker thread)."""
        if not self.enabled:
            return []
        evicted = self._cache.evict_idle(self.keep_alive_s)
        for key in evicted:
            self._metrics.evictions.labels(model=key).inc()
        return evicted

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:  # a failed unload must not stop future sweeps
                log.exception("idle-model sweep failed")
