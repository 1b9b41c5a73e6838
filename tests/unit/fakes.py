"""Fakes for orchestration tests: an engine that records what it was asked and echoes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from app.domain import Audio, DecodeOptions, LanguageGuess, Segment, Transcript, Word
from app.engines.base import SpeechWindow, WindowText, decode_one_by_one


class FakeModel:
    def __init__(self, name: str, engine: FakeEngine) -> None:
        self.name = name
        self.english_only = name.endswith(".en")
        self._engine = engine

    def transcribe(
        self,
        audio: Audio,
        options: DecodeOptions,
        windows: list[tuple[float, float]] | None = None,
    ) -> Transcript:
        engine = self._engine
        with engine.lock:
            engine.running += 1
            engine.max_running = max(engine.max_running, engine.running)
            engine.calls.append(options)
        try:
            time.sleep(engine.delay_s)
            if engine.fail_with is not None:
                raise engine.fail_with
            text = f" prompt={options.initial_prompt} lang={options.language}"
            words = (Word(100, 400, " prompt", 0.9),) if options.word_timestamps else ()
            segment = Segment(
                0,
                100,
                min(audio.duration_ms, 900),
                text,
                words=words,
                tokens=(1, 2),
                temperature=options.temperature or 0.0,
            )
            return Transcript(
                (segment,),
                options.language or "en",
                1.0,
                audio.duration_ms,
                task=options.task,
                model=self.name,
            )
        finally:
            with engine.lock:
                engine.running -= 1

    def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        return decode_one_by_one(self, windows)

    def detect_language(self, audio: Audio) -> LanguageGuess:
        return LanguageGuess("de", 0.9)

    def unload(self) -> None:
        self._engine.unloaded.append(self.name)


class FakeEngine:
    name = "fake"
    device = "cpu"
    compute_type = "none"
    runs_torch = False

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.calls: list[DecodeOptions] = []
        self.loads: list[str] = []
        self.unloaded: list[str] = []
        self.fail_with: Exception | None = None

    def load(self, name: str, path: Path) -> FakeModel:
        time.sleep(0.05)  # wide enough for racing loaders to collide
        with self.lock:
            self.loads.append(name)
        return FakeModel(name, self)
