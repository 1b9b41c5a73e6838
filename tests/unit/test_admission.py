from __future__ import annotations

import asyncio

import pytest

from app.errors import QueueFull
from app.run.admission import Admission


def test_queue_bound_and_fifo_permits() -> None:
    async def scenario() -> None:
        admission = Admission(concurrency=1, max_queue=1)
        release = asyncio.Event()
        order: list[str] = []

        async def job(name: str) -> None:
            async with admission.slot():
                order.append(name)
                await release.wait()

        first = asyncio.create_task(job("a"))
        await asyncio.sleep(0)
        second = asyncio.create_task(job("b"))
        await asyncio.sleep(0)
        assert admission.stats.running == 1 and admission.stats.queued == 1
        with pytest.raises(QueueFull):
            async with admission.slot():
                pass
        assert admission.stats.rejected == 1
        release.set()
        await asyncio.gather(first, second)
        assert order == ["a", "b"] and admission.stats.completed == 2

    asyncio.run(scenario())


def test_cancelled_waiter_leaves_the_queue_without_running() -> None:
    async def scenario() -> None:
        admission = Admission(concurrency=1, max_queue=4)
        release = asyncio.Event()
        ran: list[str] = []

        async def job(name: str) -> None:
            async with admission.slot():
                ran.append(name)
                await release.wait()

        first = asyncio.create_task(job("a"))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(job("gone"))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert admission.stats.queued == 0
        release.set()
        await first
        assert ran == ["a"] and admission.stats.running == 0

    asyncio.run(scenario())
