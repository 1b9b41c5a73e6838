"""The ASR stage through the window scheduler: a request's windows decoded in batches shared
with every other request in progress.

Windows are submitted ahead of the one being read back (up to `ahead` at a time, so one long
recording alone can still fill a batch, and only those windows' audio is in memory) and
read back in order. Each window is decoded on its own (no text carried between windows, as
with any batched decoder), with its own temperature fallback. The language is fixed once per
recording, from the first window, as the sequential decoder does: when it must be detected,
the first window goes alone and the rest follow with its answer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace

from app.domain import DecodeOptions, Segment, Transcript
from app.engines.base import SpeechWindow, WindowText, whisper_transcript
from app.pipeline.asr import TextSink, restore_times
from app.pipeline.pcm import PcmFile
from app.pipeline.windows import Window
from app.scheduler.window_scheduler import WindowStream

_SAMPLES_PER_FRAME = 160  # Whisper's mel hop: `seek` counts these
_TICK_S = 1.0  # progress (and a cancelled request's stop) at least this often while waiting


def transcribe_windows(
    stream: WindowStream,
    pcm: PcmFile,
    windows: list[Window],
    options: DecodeOptions,
    *,
    english_only: bool,
    ahead: int,
    progress: Callable[[float], None],
    on_text: TextSink | None = None,
) -> Transcript:
    """`progress` gets the fraction of speech done after each window; it may raise to
    cancel (the caller's stream then drops what is still queued). `on_text` gets each
    window's segments as soon as they are final, in order."""
    total = sum(w.samples for w in windows) or 1
    language = options.language or ("en" if english_only else None)
    probability = 1.0
    segments: list[Segment] = []
    done = 0

    def submit(window: Window, code: str | None) -> Future[WindowText]:
        return stream.submit(SpeechWindow(window.speech(pcm), replace(options, language=code)))

    def wait(
        future: Future[WindowText], pending: Sequence[tuple[Window, Future[WindowText]]]
    ) -> WindowText:
        """The window's text; meanwhile, every _TICK_S, progress with the windows in the
        engine counted as far as the scheduler estimates them (a lone request's windows
        are one batch: without this, the bar stood still for a whole minute on a CPU)."""
        while True:
            try:
                return future.result(timeout=_TICK_S)
            except TimeoutError:
                partial = sum(w.samples * stream.estimated_done(f) for w, f in pending)
                progress((done + partial) / total)

    def keep(window: Window, text: WindowText) -> None:
        nonlocal done
        timeline = window.timeline()
        seek = window.regions[0].start // _SAMPLES_PER_FRAME
        first = len(segments)
        for segment in text.segments:
            restored = restore_times(segment, timeline)
            segments.append(replace(restored, id=len(segments), seek=seek))
        if on_text is not None:
            on_text(tuple(segments[first:]))
        done += window.samples
        progress(done / total)

    upcoming = deque(windows)
    if language is None and upcoming:
        first = upcoming.popleft()
        detecting = submit(first, None)
        text = wait(detecting, [(first, detecting)])
        language, probability = text.language, text.language_probability
        keep(first, text)
    in_flight: deque[tuple[Window, Future[WindowText]]] = deque()
    while upcoming or in_flight:
        while upcoming and len(in_flight) < ahead:
            window = upcoming.popleft()
            in_flight.append((window, submit(window, language)))
        window, future = in_flight[0]
        text = wait(future, in_flight)
        in_flight.popleft()
        keep(window, text)
    return whisper_transcript(
        stream.model.name, tuple(segments), language or "en", probability, pcm.duration_ms, options
    )
