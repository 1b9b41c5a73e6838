"""Network calls from several threads run as one batch on the compute thread; each caller
gets its own rows back; a caller whose request has gone drops out."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from app.compute_thread import ComputeThread
from app.errors import StageAbandoned
from app.scheduler.network_batcher import NetworkBatcher


class Doubling:
    """A network that doubles its input, records each batch's size, and can be held."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        self.hold.wait(10)
        self.batches.append(len(inputs))
        self.threads.add(threading.current_thread().name)
        return inputs * 2


def hold_the_thread(batcher: NetworkBatcher, network: Doubling) -> ThreadPoolExecutor:
    """One call holds the compute thread, so that the next ones queue up behind it."""
    network.hold.clear()
    pool = ThreadPoolExecutor(1)
    pool.submit(batcher.call, "net", network, torch.zeros(1, 3))
    assert network.entered.wait(10)
    return pool


def wait_queued(batcher: NetworkBatcher, count: int) -> None:
    for _ in range(1000):
        if sum(len(c) for c in batcher._queued.values()) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the calls never queued")


def test_calls_of_several_threads_share_one_batch_and_get_their_own_rows() -> None:
    thread, network, seen = ComputeThread("net"), Doubling(), []
    batcher = NetworkBatcher(thread, lambda calls, rows: seen.append((calls, rows)))
    holder = hold_the_thread(batcher, network)
    inputs = [torch.full((n, 3), float(n)) for n in (1, 2, 3)]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.call, "net", network, x) for x in inputs]
        wait_queued(batcher, 3)
        network.hold.set()
        outputs = [f.result(10) for f in futures]
    holder.shutdown()
    for x, y in zip(inputs, outputs, strict=True):
        assert torch.equal(y, x * 2)
    assert network.batches == [1, 6]  # the holder's call, then all three together
    assert seen[-1] == (3, 6)
    assert network.threads == {"net_0"}
    thread.close()


def test_inputs_of_other_shapes_or_networks_are_never_mixed() -> None:
    thread, network = ComputeThread("net"), Doubling()
    batcher = NetworkBatcher(thread)
    holder = hold_the_thread(batcher, network)
    with ThreadPoolExecutor(3) as pool:
        a = pool.submit(batcher.call, "net", network, torch.ones(2, 3))
        b = pool.submit(batcher.call, "net", network, torch.ones(2, 4))
        c = pool.submit(batcher.call, "other", network, torch.ones(2, 3))
        wait_queued(batcher, 3)
        network.hold.set()
        assert [f.result(10).shape for f in (a, b, c)] == [(2, 3), (2, 4), (2, 3)]
    holder.shutdown()
    assert sorted(network.batches) == [1, 2, 2, 2]
    thread.close()


def test_a_gone_request_drops_out_and_the_others_are_answered() -> None:
    thread, network = ComputeThread("net"), Doubling()
    batcher = NetworkBatcher(thread)
    holder = hold_the_thread(batcher, network)
    gone = threading.Event()

    def call_for(request_gone: threading.Event | None, x: torch.Tensor) -> torch.Tensor:
        with batcher.on_behalf(request_gone.is_set if request_gone else lambda: False):
            return batcher.call("net", network, x)

    with ThreadPoolExecutor(2) as pool:
        cancelled = pool.submit(call_for, gone, torch.ones(4, 3))
        kept = pool.submit(call_for, None, torch.ones(1, 3))
        wait_queued(batcher, 2)
        gone.set()
        network.hold.set()
        with pytest.raises(StageAbandoned):
            cancelled.result(10)
        assert torch.equal(kept.result(10), torch.full((1, 3), 2.0))
    holder.shutdown()
    assert network.batches == [1, 1]  # the gone request's four rows never ran
    thread.close()


def test_a_failing_batch_fails_each_of_its_callers() -> None:
    thread = ComputeThread("net")
    batcher = NetworkBatcher(thread)

    def broken(inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.call("net", broken, torch.ones(1, 3))
    thread.close()


def test_a_call_from_the_compute_thread_itself_runs_in_place() -> None:
    thread, network = ComputeThread("net"), Doubling()
    batcher = NetworkBatcher(thread)
    out = thread.run(lambda: batcher.call("net", network, torch.ones(2, 3)))
    assert torch.equal(out, torch.full((2, 3), 2.0))
    thread.close()


def test_a_merged_call_never_takes_more_than_max_rows() -> None:
    thread, network = ComputeThread("net"), Doubling()
    batcher = NetworkBatcher(thread, max_rows=100)
    holder = hold_the_thread(batcher, network)
    sizes = (50, 40, 30, 120)
    with ThreadPoolExecutor(len(sizes)) as pool:
        futures = []
        for n in sizes:  # queued in this order
            futures.append(pool.submit(batcher.call, "net", network, torch.full((n, 3), 1.0)))
            wait_queued(batcher, len(futures))
        network.hold.set()
        assert [len(f.result(10)) for f in futures] == list(sizes)
    holder.shutdown()
    # the holder's row; 50 + 40 (30 more would pass 100); 30 alone (120 would); 120 alone
    assert network.batches == [1, 90, 30, 120]
    thread.close()
