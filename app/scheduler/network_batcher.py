"""One network's calls from several requests' threads, run as one batch on the network's
compute thread: the diarization stage's counterpart of the window scheduler.

Each request diarizes in a thread of its own (pyannote's pipeline, clustering and the rest
of its CPU work), and every call it makes to a network (the segmentation model over a
batch of 10 s chunks, CAM++ over a batch of speaker crops) is queued here. The compute
thread takes everything queued for one network and input shape at once, concatenates it
along the batch axis, runs the network once and hands each caller its own rows. While a
batch runs, the next calls pile up, so under load the batches grow by themselves (the
window scheduler's rule: no timer, no waiting for a full batch).

A request that is cancelled while its call waits drops out: its call is never run and
raises `StageAbandoned` in its thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from app.compute_thread import ComputeThread
from app.errors import StageAbandoned

Network = Callable[[torch.Tensor], Any]
"""(batch, ...) tensor -> (batch, ...) output (a tensor or an array), row i from input i."""


def _never() -> bool:
    return False


@dataclass
class _Call:
    network: Network
    inputs: torch.Tensor
    cancelled: Callable[[], bool]
    result: Future[Any] = field(default_factory=Future)


class NetworkBatcher:
    def __init__(
        self,
        thread: ComputeThread,
        on_batch: Callable[[int, int], None] | None = None,
        max_rows: int = 256,
    ):
        """`on_batch(calls, rows)` is told the size of every batch run (metrics, tests).
        `max_rows`: the most rows one merged call takes (a call bigger than that runs
        alone): a batch's activations grow with its rows (the segmentation network holds
        ~10 MB per 10 s chunk), so many requests at once must not make one call that no
        longer fits the device; the calls left over run next."""
        self._thread = thread
        self._max_rows = max_rows
        self._on_batch = on_batch or (lambda calls, rows: None)
        self._lock = threading.Lock()
        self._queued: dict[tuple[Any, ...], list[_Call]] = {}
        self._local = threading.local()

    @contextmanager
    def on_behalf(self, cancelled: Callable[[], bool]) -> Iterator[None]:
        """This thread's calls belong to a request that has gone when `cancelled()`."""
        previous = getattr(self._local, "cancelled", _never)
        self._local.cancelled = cancelled
        try:
            yield
        finally:
            self._local.cancelled = previous

    def wrap(self, name: str, network: Network) -> Network:
        """`network`, its calls batched with other threads' calls of the same `name`."""
        return lambda inputs: self.call(name, network, inputs)

    def call(self, name: str, network: Network, inputs: torch.Tensor) -> Any:
        """`network(inputs)`, run on the compute thread together with the calls of other
        threads queued under the same `name` and input shape (all but the batch axis)."""
        if self._thread.is_current():  # a stage on the compute thread itself: in place
            return network(inputs)
        call = _Call(network, inputs, getattr(self._local, "cancelled", _never))
        key = (name, tuple(inputs.shape[1:]), inputs.dtype, inputs.device)
        with self._lock:
            self._queued.setdefault(key, []).append(call)
        self._thread.submit(lambda: self._run(key))
        return call.result.result()

    def _run(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            queued = self._queued.get(key, [])
            calls: list[_Call] = []
            taken = 0
            while queued and (not calls or taken + len(queued[0].inputs) <= self._max_rows):
                taken += len(queued[0].inputs)
                calls.append(queued.pop(0))
            if not queued:
                self._queued.pop(key, None)
        live = []
        for call in calls:
            if call.cancelled():
                call.result.set_exception(StageAbandoned())
            else:
                live.append(call)
        if not live:
            return
        rows = [len(call.inputs) for call in live]
        self._on_batch(len(live), sum(rows))
        try:
            inputs = live[0].inputs if len(live) == 1 else torch.cat([c.inputs for c in live])
            outputs = live[0].network(inputs)
        except BaseException as exc:
            for call in live:
                call.result.set_exception(exc)
            return
        for call, part in zip(live, _split(outputs, rows), strict=True):
            call.result.set_result(part)


def _split(outputs: Any, rows: Sequence[int]) -> list[Any]:
    parts, start = [], 0
    for count in rows:
        parts.append(outputs[start : start + count])
        start += count
    return parts
