"""The window scheduler's estimate of a batch in the engine (for progress bars): 0 while a
window waits, growing with the time its batch has run against the measured seconds per
window, still moving, below 0.95, when the batch runs late; 1 once the result is there."""

from __future__ import annotations

import threading
import time
from typing import cast

from app.engines.base import LoadedModel, SpeechWindow, WindowText
from app.scheduler.window_scheduler import WindowScheduler


class SlowModel:
    """decode_windows takes 0.5 s per window, and then waits for `hold` to be set."""

    name = "fake"
    english_only = True

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()

    def decode_windows(self, windows: list[SpeechWindow]) -> list[WindowText]:
        self.started.set()
        time.sleep(0.5 * len(windows))
        self.hold.wait()
        return [cast(WindowText, None) for _ in windows]


def test_estimate_grows_while_a_batch_runs_and_is_one_when_done() -> None:
    model = SlowModel()
    scheduler = WindowScheduler(4)
    try:
        stream = scheduler.open(cast(LoadedModel, model))
        window = cast(SpeechWindow, object())
        first = stream.submit(window)
        first.result(timeout=5)  # measures ~0.5 s per window
        assert stream.estimated_done(first) == 1.0
        model.hold.clear()
        model.started.clear()
        batch = [stream.submit(window) for _ in range(2)]
        model.started.wait(5)
        queued = stream.submit(window)  # behind the running batch
        time.sleep(0.1)
        early = stream.estimated_done(batch[0])
        time.sleep(0.3)
        late = stream.estimated_done(batch[0])
        assert 0.0 < early < late < 0.95, (early, late)
        assert stream.estimated_done(queued) == 0.0
        time.sleep(1.2)  # past the ~1 s two windows were expected to take: held
        overdue = stream.estimated_done(batch[0])
        time.sleep(0.3)
        later = stream.estimated_done(batch[0])
        assert late < overdue < later < 0.95, (late, overdue, later)
        model.hold.set()
        for future in [*batch, queued]:
            future.result(timeout=5)
        assert all(stream.estimated_done(f) == 1.0 for f in [*batch, queued])
    finally:
        model.hold.set()
        scheduler.close()
