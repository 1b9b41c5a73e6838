"""Loaded Whisper models by name: each is loaded once, even when requests race for it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.engines.base import Engine, LoadedModel
from app.models.registry import ModelRef, ModelRegistry

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    model: LoadedModel
    last_used: float
    in_use: int = 0


class ModelCache:
    """Thread-safe; `use()` is called from worker threads, never the event loop."""

    def __init__(self, engine: Engine, registry: ModelRegistry) -> None:
        self._engine = engine
        self._registry = registry
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}

    @contextmanager
    def use(self, ref: ModelRef) -> Iterator[LoadedModel]:
        """Lend the model for one request; a model lent out is never evicted."""
        entry = self._acquire(ref)
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_used = time.monotonic()

    def _acquire(self, ref: ModelRef) -> _Entry:
        with self._lock:
            load_lock = self._load_locks.setdefault(ref.name, threading.Lock())
        with load_lock:  # one loader per name; others wait and then share its result
            with self._lock:
                entry = self._entries.get(ref.name)
                if entry is not None:
                    entry.in_use += 1
                    return entry
            path = self._registry.materialize(ref)
            model = self._engine.load(ref.name, path)
            with self._lock:
                entry = _Entry(model, time.monotonic(), in_use=1)
                self._entries[ref.name] = entry
                return entry

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def evict_idle(self, keep_alive_s: float) -> list[str]:
        """Unload models idle longer than keep_alive_s and not in use; returns their names."""
        now = time.monotonic()
        evicted: list[tuple[str, _Entry]] = []
        with self._lock:
            for name, entry in list(self._entries.items()):
                if entry.in_use == 0 and now - entry.last_used > keep_alive_s:
                    evicted.append((name, self._entries.pop(name)))
        for name, entry in evicted:
            log.info("unloading idle model %s", name)
            entry.model.unload()
        return [name for name, _ in evicted]

    def unload_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.model.unload()
