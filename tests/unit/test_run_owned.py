"""One owner per transcription: a cancelled caller waits for its model thread to stop (at
its next progress report) before the cancellation goes on, and a synchronous client that
disconnects stops its run."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.errors import ClientGone
from app.run.owned import StopToken, run_owned


def windows(token: StopToken, seen: list[str], count: int = 50) -> str:
    """A model thread: a 'window' every 50 ms, a progress report after each."""
    report = token.checked(lambda stage, fraction: None)
    for i in range(count):
        time.sleep(0.05)
        seen.append(f"window {i}")
        report("transcribe", i / count)
    return "done"


def test_a_cancelled_caller_returns_only_after_its_thread_has_stopped() -> None:
    seen: list[str] = []
    stopped_at: list[float] = []

    async def main() -> None:
        token = StopToken()

        def work() -> str:
            try:
                return windows(token, seen)
            finally:
                stopped_at.append(time.monotonic())

        task = asyncio.create_task(run_owned(work, token))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The thread had ended before the cancellation reached us, a window or so later
        # (before, the cancellation came at once and the thread ran on for 2 s).
        assert stopped_at
        assert token.stopped and 3 <= len(seen) <= 10, seen
        count = len(seen)
        await asyncio.sleep(0.2)
        assert len(seen) == count  # nothing runs after the caller was told

    asyncio.run(main())


def test_a_disconnected_client_stops_its_run() -> None:
    seen: list[str] = []
    gone = asyncio.Event()

    async def disconnected() -> bool:
        return gone.is_set()

    async def main() -> None:
        token = StopToken()
        task = asyncio.create_task(
            run_owned(lambda: windows(token, seen, 200), token, disconnected)
        )
        await asyncio.sleep(0.2)
        gone.set()
        with pytest.raises(ClientGone, match="disconnected"):
            await task
        assert len(seen) < 60, len(seen)  # stopped within the poll (1 s), not after 10 s

    asyncio.run(main())


def test_an_uncancelled_run_returns_its_result() -> None:
    async def main() -> str:
        token = StopToken()
        return await run_owned(lambda: windows(token, [], 3), token)

    assert asyncio.run(main()) == "done"
