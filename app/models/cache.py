"""Models in memory by key ("whisper/base", "diarization/..."): each is loaded once, even
when requests race for it; one lent to a request is never evicted; a load that failed is
remembered for a while and fails again at once, instead of being retried by every request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar


class Unloadable(Protocol):
    def unload(self) -> None: ...


M = TypeVar("M", bound=Unloadable)

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    model: Unloadable
    last_used: float
    in_use: int = 0


class ModelCache:
    """Thread-safe; `use()` is called from worker threads, never the event loop."""

    def __init__(
        self,
        on_change: Callable[[], None] | None = None,
        failure_ttl_s: float = 60.0,
        max_loaded: dict[str, int] | None = None,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        """`max_loaded`: kind ("whisper") -> at most this many of that kind in memory; the
        least recently used idle one is unloaded to make room for another (one in use never
        is: then the new one loads beside it, said in the log)."""
        self._max_loaded = max_loaded or {}
        self._on_evict = on_evict or (lambda key: None)
        self._entries: dict[str, _Entry] = {}
        self._failures: dict[str, tuple[Exception, float]] = {}  # key -> (error, until)
        self._failure_ttl_s = failure_ttl_s
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._on_change = on_change or (lambda: None)

    @contextmanager
    def use(self, key: str, load: Callable[[], M]) -> Iterator[M]:
        """Lend the model stored under `key`, calling `load()` first if it is not in memory."""
        entry = self._acquire(key, load)
        try:
            yield entry.model  # type: ignore[misc]
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_used = time.monotonic()

    def _acquire(self, key: str, load: Callable[[], Unloadable]) -> _Entry:
        with self._lock:
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:  # one loader per key; the others wait, then share its result
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.in_use += 1
                    return entry
            failed = self._failures.get(key)
            if failed is not None and time.monotonic() < failed[1]:
                raise failed[0]
            self._make_room(key)
            started = time.perf_counter()
            try:
                model = load()
            except Exception as exc:
                self._failures[key] = (exc, time.monotonic() + self._failure_ttl_s)
                raise
            self._failures.pop(key, None)
            log.info("loaded %s in %.1f s", key, time.perf_counter() - started)
            with self._lock:
                entry = _Entry(model, time.monotonic(), in_use=1)
                self._entries[key] = entry
        self._on_change()
        return entry

    def _make_room(self, key: str) -> None:
        """Before `key` loads: unload the least recently used idle models of its kind
        until one more fits under that kind's limit."""
        kind = key.split("/", 1)[0]
        most = self._max_loaded.get(kind)
        if not most:
            return
        evicted: list[tuple[str, _Entry]] = []
        with self._lock:
            same = [(k, e) for k, e in self._entries.items() if k.startswith(f"{kind}/")]
            idle = sorted((e.last_used, k) for k, e in same if e.in_use == 0)
            while len(same) - len(evicted) >= most and idle:
                _, oldest = idle.pop(0)
                evicted.append((oldest, self._entries.pop(oldest)))
            if len(same) - len(evicted) >= most:
                log.warning("%s loads beyond MAX_LOADED_MODELS: every loaded one is in use", key)
        for old, entry in evicted:
            log.info("unloading %s to make room for %s (MAX_LOADED_MODELS)", old, key)
            entry.model.unload()
            self._on_evict(old)
        if evicted:
            self._on_change()

    def loaded(self, kind: str | None = None) -> list[str]:
        """Keys in memory; with `kind`, the names under that kind ("whisper" -> ["base"])."""
        with self._lock:
            keys = sorted(self._entries)
        if kind is None:
            return keys
        prefix = f"{kind}/"
        return [k[len(prefix) :] for k in keys if k.startswith(prefix)]

    def evict_idle(self, keep_alive_s: float) -> list[str]:
        """Unload models idle longer than keep_alive_s and not in use; returns their keys."""
        now = time.monotonic()
        evicted: list[tuple[str, _Entry]] = []
        with self._lock:
            for key, entry in list(self._entries.items()):
                if entry.in_use == 0 and now - entry.last_used > keep_alive_s:
                    evicted.append((key, self._entries.pop(key)))
        for key, entry in evicted:
            log.info("unloading %s (idle %.0f s)", key, now - entry.last_used)
            entry.model.unload()
        if evicted:
            self._on_change()
        return [key for key, _ in evicted]

    def unload_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.model.unload()
        self._on_change()
