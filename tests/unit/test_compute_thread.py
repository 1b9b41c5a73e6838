"""Work handed to a ComputeThread runs on one thread, whoever hands it over."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.compute_thread import ComputeThread


def test_all_callers_share_one_thread() -> None:
    compute = ComputeThread("test")
    with ThreadPoolExecutor(max_workers=4) as callers:
        idents = set(callers.map(lambda _: compute.run(threading.get_ident), range(16)))
    compute.close()
    assert len(idents) == 1
    assert threading.get_ident() not in idents


def test_nested_work_runs_in_place_and_errors_reach_the_caller() -> None:
    compute = ComputeThread("test")
    caller = ThreadPoolExecutor(max_workers=1)
    nested = caller.submit(
        compute.run, lambda: (threading.get_ident(), compute.run(threading.get_ident))
    )
    outer, inner = nested.result(timeout=10)  # a deadlock fails here instead of hanging
    caller.shutdown(wait=False)
    assert outer == inner

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        compute.run(fail)
    compute.close()
