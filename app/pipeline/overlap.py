"""A stage that runs on its own compute thread while the request goes on with others: on a
GPU a request's diarization starts as soon as its speech regions are known and runs beside
its ASR and alignment (it needs neither), so the request takes the longer of the two rather
than their sum, and ASR batches never queue behind it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from app.errors import StageAbandoned

Report = Callable[[float], None]
Submit = Callable[[Callable[[], Any]], Future[Any]]
"""Where the stage runs: a compute thread's `submit`, or an executor's."""


class Overlapped[T]:
    """`work(report, abandoned)` started now, through `submit` (`abandoned()` says when
    the request has gone). Its progress is held back until the request
    waits for it (`result`): till then the request's own stages report, and one overall
    fraction must not jump back and forth between two stages."""

    def __init__(
        self, submit: Submit, work: Callable[[Report, Callable[[], bool]], T], progress: Report
    ):
        self._progress = progress
        self._waited = False
        self._latest = 0.0
        self._abandoned = False
        self._future: Future[T] = submit(lambda: work(self._report, self.abandoned))

    def abandoned(self) -> bool:
        return self._abandoned

    def _report(self, fraction: float) -> None:
        if self._abandoned:
            raise StageAbandoned
        self._latest = fraction
        if self._waited:
            self._progress(fraction)

    def result(self) -> T:
        """Wait for the stage (its progress reported from now on); its exception is raised
        here."""
        self._waited = True
        self._progress(self._latest)
        return self._future.result()

    def abandon(self) -> None:
        """Stop the stage at its next progress report (or before it starts) and wait until
        it has stopped, so that nothing it reads is removed under it."""
        self._abandoned = True
        if not self._future.cancel():
            with contextlib.suppress(BaseException):
                self._future.result()
