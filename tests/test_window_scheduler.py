"""The window scheduler with the real CTranslate2 engine (tiny.en): windows of several
requests share batches, each request gets its own windows back in order, a short request is
not starved by a long one, and a cancelled request's queued windows never reach the model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from audio_tools import CONVERSATION, JFK

from app.domain import DecodeOptions
from app.engines.base import LoadedModel, SpeechWindow, WindowText
from app.engines.ctranslate2_engine import CTranslate2Engine, CTranslate2Model
from app.pipeline.decode import decode_to_pcm
from app.pipeline.vad import SpeechRegion
from app.pipeline.window_asr import transcribe_windows
from app.pipeline.windows import Window
from app.scheduler.window_scheduler import WindowScheduler

OPTIONS = DecodeOptions(language="en", beam_size=1)


@pytest.fixture(scope="module")
def model(tiny_en: Path) -> CTranslate2Model:
    return CTranslate2Engine("cpu", "int8", 1, 0, 1).load("tiny.en", tiny_en)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("pcm")
    return {p.stem: decode_to_pcm(p, folder / f"{p.stem}.pcm").read() for p in (JFK, CONVERSATION)}


@dataclass
class Recorder:
    """The real model, with a record of which windows each batch held; the first batch
    waits for `release` so that the test can queue work behind it."""

    model: CTranslate2Model
    labels: dict[int, str] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def english_only(self) -> bool:
        return self.model.english_only

    @property
    def loaded(self) -> LoadedModel:
        """As the scheduler sees it (it only calls decode_windows)."""
        return cast(LoadedModel, self)

    def window(self, samples: np.ndarray, label: str) -> SpeechWindow:
        window = SpeechWindow(samples, OPTIONS)
        self.labels[id(window)] = label
        return window

    def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        self.started.set()
        self.release.wait(timeout=60)
        self.batches.append([self.labels.get(id(w), "?") for w in windows])
        return self.model.decode_windows(windows)


@pytest.fixture
def recorder(model: CTranslate2Model) -> Recorder:
    return Recorder(model)


@pytest.fixture
def scheduler() -> Iterator[Callable[[int], WindowScheduler]]:
    made: list[WindowScheduler] = []

    def make(size: int) -> WindowScheduler:
        made.append(WindowScheduler(size))
        return made[-1]

    yield make
    for s in made:
        s.close()


def text(future: Future[WindowText]) -> str:
    return "".join(s.text for s in future.result(timeout=120).segments)


def test_windows_of_concurrent_requests_share_batches_and_come_back_in_order(
    model: CTranslate2Model,
    recorder: Recorder,
    clips: dict[str, np.ndarray],
    scheduler: Callable[[int], WindowScheduler],
) -> None:
    windows = {name: SpeechWindow(audio, OPTIONS) for name, audio in clips.items()}
    alone = {
        name: "".join(s.text for s in r.segments)
        for name, r in zip(windows, model.decode_windows(list(windows.values())), strict=True)
    }
    s = scheduler(8)
    a, b = s.open(recorder.loaded), s.open(recorder.loaded)
    order = ["jfk_style", "conversation", "jfk_style"]
    futures_a = [a.submit(recorder.window(clips[order[0]], "a0"))]
    assert recorder.started.wait(30)  # a0 is in the engine: the rest queue behind it
    futures_a += [a.submit(recorder.window(clips[n], f"a{i}")) for i, n in enumerate(order) if i]
    futures_b = [b.submit(recorder.window(clips[n], f"b{i}")) for i, n in enumerate(order[::-1])]
    recorder.release.set()
    assert [text(f) for f in futures_a] == [alone[n] for n in order]
    assert [text(f) for f in futures_b] == [alone[n] for n in order[::-1]]
    # The first batch took what was there; the second holds both requests' windows, in turns.
    assert recorder.batches == [["a0"], ["a1", "b0", "a2", "b1", "b2"]]
    assert s.stats.largest_batch == 5 and s.stats.windows == 6


def test_a_short_request_gets_a_slot_in_the_next_batch_behind_a_long_one(
    recorder: Recorder, clips: dict[str, np.ndarray], scheduler: Callable[[int], WindowScheduler]
) -> None:
    s = scheduler(4)
    long, short = s.open(recorder.loaded), s.open(recorder.loaded)
    jfk = clips["jfk_style"]
    long_futures = [long.submit(recorder.window(jfk, "long0"))]
    assert recorder.started.wait(30)  # batch 1 (long0) is in the engine
    long_futures += [long.submit(recorder.window(jfk, f"long{i}")) for i in range(1, 10)]
    short_future = short.submit(recorder.window(jfk, "short"))
    recorder.release.set()
    assert text(short_future)
    assert [text(f) for f in long_futures]
    assert recorder.batches[0] == ["long0"]
    assert "short" in recorder.batches[1]  # not after the long request's nine queued windows
    assert recorder.batches[1] == ["long1", "short", "long2", "long3"]
    assert max(len(b) for b in recorder.batches) == 4


def test_a_cancelled_request_drops_its_queued_windows_and_others_go_on(
    recorder: Recorder, clips: dict[str, np.ndarray], scheduler: Callable[[int], WindowScheduler]
) -> None:
    s = scheduler(2)
    gone, stays = s.open(recorder.loaded), s.open(recorder.loaded)
    jfk = clips["jfk_style"]
    gone_futures = [gone.submit(recorder.window(jfk, "gone0"))]
    assert recorder.started.wait(30)
    gone_futures += [gone.submit(recorder.window(jfk, f"gone{i}")) for i in range(1, 6)]
    kept = stays.submit(recorder.window(jfk, "stays"))
    gone.cancel()
    recorder.release.set()
    assert text(kept)
    assert text(gone_futures[0])  # already in the engine when cancelled: it finishes
    for future in gone_futures[1:]:
        with pytest.raises(CancelledError):
            future.result(timeout=30)
    seen = [label for batch in recorder.batches for label in batch]
    assert seen == ["gone0", "stays"]
    assert s.stats.cancelled == 5 and s.queued == 0
    assert gone.submit(recorder.window(jfk, "late")).cancelled()  # a closed stream takes nothing


def test_a_request_that_stops_midway_leaves_nothing_in_the_scheduler(
    recorder: Recorder,
    clips: dict[str, np.ndarray],
    scheduler: Callable[[int], WindowScheduler],
    tmp_path: Path,
) -> None:
    """The pipeline's side: progress raising (a cancelled job) ends the request, and its
    windows still queued are dropped rather than decoded for nobody."""
    recorder.release.set()
    pcm = decode_to_pcm(JFK, tmp_path / "jfk.pcm")
    windows = [Window((SpeechRegion(0, pcm.samples),)) for _ in range(8)]
    s = scheduler(2)

    class Stop(Exception):
        pass

    def progress(fraction: float) -> None:
        raise Stop

    with pytest.raises(Stop), s.open(recorder.loaded) as stream:
        transcribe_windows(
            stream, pcm, windows, OPTIONS, english_only=True, ahead=4, progress=progress
        )
    assert s.queued == 0 and s.streams == 0
    decoded = sum(len(b) for b in recorder.batches)
    assert decoded <= 4  # what was in flight when it stopped, never all eight


def test_one_bad_window_fails_only_its_own_request(
    model: CTranslate2Model,
    clips: dict[str, np.ndarray],
    scheduler: Callable[[int], WindowScheduler],
) -> None:
    started, release = threading.Event(), threading.Event()
    sizes: list[int] = []

    class Picky:
        """Refuses any batch holding an empty window (a stand-in for an engine error)."""

        name, english_only = model.name, model.english_only

        def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
            started.set()
            release.wait(60)
            sizes.append(len(windows))
            if any(len(w.samples) == 0 for w in windows):  # type: ignore[arg-type]
                raise RuntimeError("empty window")
            return model.decode_windows(windows)

    picky: LoadedModel = Picky()  # type: ignore[assignment]
    s = scheduler(4)
    first = s.open(picky).submit(SpeechWindow(clips["jfk_style"], OPTIONS))
    assert started.wait(30)
    bad = s.open(picky).submit(SpeechWindow(np.zeros(0, np.float32), OPTIONS))
    good = s.open(picky).submit(SpeechWindow(clips["conversation"], OPTIONS))
    release.set()
    assert text(first) and text(good)
    with pytest.raises(RuntimeError, match="empty window"):
        bad.result(timeout=60)
    assert sizes == [1, 2, 1, 1]  # the failed batch of two, then each window alone


def test_the_scheduler_accounts_for_its_busy_and_idle_time(
    recorder: Recorder, clips: dict[str, np.ndarray], scheduler: Callable[[int], WindowScheduler]
) -> None:
    s = scheduler(4)
    time.sleep(0.3)  # nothing queued: idle, and counted while it lasts
    assert s.idle_s >= 0.25 and s.stats.idle_s == 0.0
    stream = s.open(recorder.loaded)
    future = stream.submit(recorder.window(clips["jfk_style"], "a"))
    assert recorder.started.wait(30)
    time.sleep(0.3)  # the window is in the engine: busy
    recorder.release.set()
    assert "ask not" in text(future).lower()
    assert s.stats.idle_s >= 0.25 and s.stats.engine_s >= 0.25
    assert s.idle_s >= s.stats.idle_s
