"""A stage started beside the request's other stages: it runs at once, its progress waits
until the request waits for it, and a request that fails stops it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from app.compute_thread import ComputeThread
from app.errors import StageAbandoned
from app.pipeline.overlap import Overlapped


def test_the_stage_runs_while_the_request_goes_on_and_reports_once_waited_for() -> None:
    thread, reported = ComputeThread("side"), list[float]()
    asr_done = threading.Event()

    def stage(report: Callable[[float], None], gone: Callable[[], bool]) -> str:
        report(0.5)
        assert asr_done.wait(10)  # the request's own stage ran meanwhile
        report(1.0)
        return "speakers"

    overlapped = Overlapped(thread.submit, stage, reported.append)
    asr_done.set()
    threading.Event().wait(0.05)
    assert overlapped.result() == "speakers"
    assert reported and reported[-1] == 1.0
    assert 0.5 not in reported[1:]  # held back while the request's own stages reported
    thread.close()


def test_abandoning_stops_the_stage_at_its_next_report_and_waits_for_it() -> None:
    thread = ComputeThread("side")
    started, stopped = threading.Event(), threading.Event()
    gone_seen: list[bool] = []

    def stage(report: Callable[[float], None], gone: Callable[[], bool]) -> None:
        started.set()
        try:
            for _ in range(1000):
                gone_seen.append(gone())
                report(0.1)
                threading.Event().wait(0.01)
        except StageAbandoned:
            stopped.set()
            raise

    overlapped = Overlapped(thread.submit, stage, lambda f: None)
    assert started.wait(10)
    overlapped.abandon()
    assert stopped.is_set()  # abandon() returned only once the stage had stopped
    assert overlapped.abandoned()
    with pytest.raises(StageAbandoned):
        overlapped.result()
    thread.close()
