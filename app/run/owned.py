"""One owner for a transcription's model work: the thread it runs in is awaited to the end.

A task awaiting a worker thread can be cancelled (a streaming client left, a client timeout
in ray mode, a job worker stopping) while the thread runs on; if the admission permit and
the work folder were handed back then, the next request would run beside a thread still
decoding into a deleted folder. `run_owned` instead sets the run's stop token, waits for
the thread to return (it stops at its next progress report: between windows, at least
once a second while it waits for a batch, between diarization chunks), and only then lets
the cancellation through, so whoever holds the permit and the folder releases them after
the thread. A synchronous client that disconnects while its work runs stops it the same
way (its connection is polled once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

from app.domain import Progress
from app.errors import ClientGone

log = logging.getLogger(__name__)

POLL_S = 1.0
"""How often a synchronous client's connection is checked while its work runs."""


class StopToken:
    """Set once to stop a run; the run's progress reports raise ClientGone after that."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def stop(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def checked(self, progress: Progress) -> Progress:
        """`progress`, raising first once the run was stopped (in the run's own thread)."""

        def report(stage: str, fraction: float) -> None:
            if self._event.is_set():
                raise ClientGone(f"The transcription was stopped: {self.reason}.")
            progress(stage, fraction)

        return report


async def run_owned[T](
    work: Callable[[], T],
    token: StopToken,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> T:
    """`work()` in a worker thread, awaited until it returns even when this task is
    cancelled (the token is set then, and the cancellation raised after the thread ends).
    `disconnected` (a synchronous request's): polled while it runs; a client gone stops
    the run, which then raises ClientGone."""
    future = asyncio.ensure_future(asyncio.to_thread(work))
    watcher = None
    if disconnected is not None:
        watcher = asyncio.create_task(_watch(disconnected, token, future))
    cancelled = False
    try:
        while not future.done():
            try:
                await asyncio.wait({future})  # never cancels the thread's future
            except asyncio.CancelledError:
                cancelled = True  # stop the thread, then wait for it to return
                token.stop("its caller was cancelled")
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if cancelled:  # the thread has returned: now the cancellation goes on
        with contextlib.suppress(BaseException):
            future.result()
        log.info("a transcription's thread stopped: %s", token.reason)
        raise asyncio.CancelledError
    return future.result()


async def _watch[T](
    disconnected: Callable[[], Awaitable[bool]], token: StopToken, future: asyncio.Future[T]
) -> None:
    while not future.done():
        await asyncio.sleep(POLL_S)
        if not future.done() and await disconnected():
            token.stop("the client disconnected")
            return
