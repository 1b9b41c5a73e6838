"""The window scheduler: speech windows from every request and job, packed into engine batches.

Each transcription opens a `WindowStream` and submits its windows (<= 30 s of speech each,
with that request's options); one scheduler thread takes windows from all open streams into
batches of up to `max_batch_windows` and hands each batch to the model's `decode_windows`.
A batch is formed the moment the engine is free, from whatever is queued then: nobody waits
for a batch to fill, so one client alone sees no added latency, and the batch grows with the
load (window-level continuous batching: a finished batch's slots go to whatever is queued).

Fairness: a batch takes one window from each stream in turn, starting after the stream the
previous batch ended at, so a 10-second request arriving behind a 3-hour job gets a slot in
the very next batch instead of waiting for the job's queued windows. Order within a stream
is kept (results are futures, one per window, read back in order by the pipeline).
Cancellation: `WindowStream.cancel` drops the stream's queued windows; windows already in a
batch finish and their results are dropped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from app.engines.base import LoadedModel, SpeechWindow, WindowText

log = logging.getLogger(__name__)

RunBatch = Callable[[Callable[[], list[WindowText]]], list[WindowText]]


def run_here(work: Callable[[], list[WindowText]]) -> list[WindowText]:
    return work()


@dataclass
class _Queued:
    window: SpeechWindow
    future: Future[WindowText]


@dataclass(eq=False)
class WindowStream:
    """One transcription's windows. Use it as a context manager: leaving it cancels
    whatever it still has queued (a request that failed or was cancelled midway)."""

    scheduler: WindowScheduler
    model: LoadedModel
    label: str = ""
    queue: deque[_Queued] = field(default_factory=deque)
    closed: bool = False

    def submit(self, window: SpeechWindow) -> Future[WindowText]:
        return self.scheduler._submit(self, window)

    def cancel(self) -> None:
        self.scheduler._cancel(self)

    def estimated_done(self, future: Future[WindowText]) -> float:
        """How much of this window is likely decoded: for progress bars, never for
        decisions (WindowScheduler.estimated_done says how it is estimated)."""
        return self.scheduler.estimated_done(future)

    def __enter__(self) -> WindowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


@dataclass
class SchedulerStats:
    batches: int = 0
    windows: int = 0
    largest_batch: int = 0
    cancelled: int = 0
    engine_s: float = 0.0
    """Seconds the engine spent on batches (busy time: engine_s / wall time = utilisation)."""
    idle_s: float = 0.0
    """Seconds the scheduler waited with no window queued (the engine starved, or no load);
    wall time - engine_s - idle_s is the scheduler's own time between batches."""


class WindowScheduler:
    def __init__(
        self,
        max_batch_windows: int,
        run_batch: RunBatch = run_here,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`run_batch` runs a batch where its engine computes (a torch engine's batches go
        to the torch thread); `on_batch(windows)` is told each batch's size (metrics)."""
        self.max_batch_windows = max_batch_windows
        self._run_batch = run_batch
        self._on_batch = on_batch or (lambda size: None)
        self._ready = threading.Condition()
        self._streams: deque[WindowStream] = deque()
        self._closed = False
        self.stats = SchedulerStats()
        self._idle_since: float | None = None
        self._running: tuple[float, int, frozenset[int]] | None = None
        """The batch in the engine: (started, windows, ids of its futures)."""
        self._thread = threading.Thread(target=self._loop, name="window-scheduler", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the scheduler's thread runs (a health check's question)."""
        return self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Windows waiting for a batch."""
        with self._ready:
            return sum(len(s.queue) for s in self._streams)

    @property
    def streams(self) -> int:
        """Transcriptions with windows in the scheduler."""
        with self._ready:
            return len(self._streams)

    @property
    def idle_s(self) -> float:
        """Seconds waited with no window queued, the wait going on now included."""
        with self._ready:
            since = self._idle_since
            return self.stats.idle_s + (time.perf_counter() - since if since else 0.0)

    def estimated_done(self, future: Future[WindowText]) -> float:
        """The fraction of `future`'s window likely decoded: 1 when it is, 0 while it waits
        for a batch; inside the engine, the time its batch has run over what a batch of
        that many windows took here so far (this scheduler's mean seconds per window; the
        engine reports nothing mid-batch). Past 0.8 it creeps towards 0.95 and never gets
        there (`_creep`): a batch slower than the mean still moves the bar, and only the
        result makes it 1."""
        if future.done():
            return 1.0
        running, stats = self._running, self.stats
        if running is None or id(future) not in running[2] or not stats.windows:
            return 0.0
        started, windows, _ = running
        expected = windows * stats.engine_s / stats.windows
        return _creep((time.perf_counter() - started) / expected) if expected > 0 else 0.0

    def open(self, model: LoadedModel, label: str = "") -> WindowStream:
        return WindowStream(self, model, label)

    def close(self) -> None:
        """Stop: queued windows are cancelled (their waiters get CancelledError); a batch
        being decoded finishes."""
        with self._ready:
            self._closed = True
            for stream in self._streams:
                self._drop(stream)
            self._streams.clear()
            self._ready.notify_all()
        self._thread.join(timeout=60)

    # --- streams ---------------------------------------------------------------------------
    def _submit(self, stream: WindowStream, window: SpeechWindow) -> Future[WindowText]:
        future: Future[WindowText] = Future()
        with self._ready:
            if self._closed or stream.closed:
                future.cancel()
                return future
            if stream not in self._streams:
                self._streams.append(stream)
            stream.queue.append(_Queued(window, future))
            self._ready.notify()
        return future

    def _cancel(self, stream: WindowStream) -> None:
        with self._ready:
            stream.closed = True
            self._drop(stream)
            if stream in self._streams:
                self._streams.remove(stream)

    def _drop(self, stream: WindowStream) -> None:
        self.stats.cancelled += len(stream.queue)
        while stream.queue:
            stream.queue.popleft().future.cancel()

    # --- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._ready:
                self._idle_since = time.perf_counter()
                while not self._closed and not any(s.queue for s in self._streams):
                    self._ready.wait()
                self.stats.idle_s += time.perf_counter() - self._idle_since
                self._idle_since = None
                if self._closed:
                    return
                model, batch = self._take()
            self._decode(model, batch)

    def _take(self) -> tuple[LoadedModel, list[_Queued]]:
        """One window from each stream in turn (streams of the first stream's model), until
        the batch is full or nothing is queued; the next batch starts after the last stream
        this one took from."""
        streams = self._streams
        while not streams[0].queue:
            streams.rotate(-1)
        model = streams[0].model
        batch: list[_Queued] = []
        last = 0
        while len(batch) < self.max_batch_windows:
            took = False
            for index, stream in enumerate(streams):
                if len(batch) == self.max_batch_windows:
                    break
                if stream.queue and stream.model is model:
                    batch.append(stream.queue.popleft())
                    last, took = index, True
            if not took:
                break
        streams.rotate(-(last + 1))
        for stream in [s for s in streams if not s.queue]:
            streams.remove(stream)  # back in when it submits again
        return model, batch

    def _decode(self, model: LoadedModel, batch: list[_Queued]) -> None:
        live = [q for q in batch if q.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.stats.batches += 1
        self.stats.windows += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        self._on_batch(len(live))
        windows = [q.window for q in live]
        started = time.perf_counter()
        self._running = (started, len(live), frozenset(id(q.future) for q in live))
        try:
            results = self._run_batch(lambda: model.decode_windows(windows))
        except BaseException as exc:  # handed to the waiting requests
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            # Decode each window alone, so only a window that fails fails its request.
            log.warning("a batch of %d windows failed (%s); decoding one by one", len(live), exc)
            for queued in live:
                self._decode_alone(model, queued)
            return
        finally:
            self._running = None
            self.stats.engine_s += time.perf_counter() - started
        for queued, result in zip(live, results, strict=True):
            queued.future.set_result(result)

    def _decode_alone(self, model: LoadedModel, queued: _Queued) -> None:
        try:
            result = self._run_batch(lambda: model.decode_windows([queued.window]))
        except BaseException as exc:
            queued.future.set_exception(exc)
        else:
            queued.future.set_result(result[0])


def _creep(ratio: float) -> float:
    """`ratio` (time run over time expected) as a fraction done: itself up to 0.8, then
    rising ever more slowly towards 0.95 (same slope at 0.8, so the bar does not jerk)."""
    if ratio <= 0.8:
        return ratio
    return 0.8 + 0.15 * (1.0 - math.exp(-(ratio - 0.8) / 0.15))
