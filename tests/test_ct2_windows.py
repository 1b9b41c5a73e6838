"""The CTranslate2 window decoder (what the window scheduler calls): windows of different
requests in one batch, each decoded as the sequential decoder decodes it alone, and the
temperature fallback applied to the window that failed, not to the whole batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_tools import CONVERSATION, FIXTURES, JFK, SPANISH
from model_files import bundled_model

from app.domain import Audio, DecodeOptions, Segment
from app.engines import ctranslate2_windows
from app.engines.base import SpeechWindow
from app.engines.ctranslate2_engine import CTranslate2Engine, CTranslate2Model
from app.pipeline.decode import decode_to_pcm

RAPID = FIXTURES / "rapid.flac"


@pytest.fixture(scope="module")
def base(cache_dir: Path) -> CTranslate2Model:
    return CTranslate2Engine("cpu", "int8", 1, 0, 1).load("base", bundled_model("base", cache_dir))


def samples(path: Path, tmp_path: Path) -> np.ndarray:
    return decode_to_pcm(path, tmp_path / f"{path.stem}.pcm").read()


def shape(segments: tuple[Segment, ...]) -> list[tuple[Any, ...]]:
    return [
        (s.start_ms, s.end_ms, s.text, [(w.start_ms, w.end_ms, w.text) for w in s.words])
        for s in segments
    ]


def test_a_mixed_batch_gives_each_window_what_the_sequential_decoder_gives_it(
    base: CTranslate2Model, tmp_path: Path
) -> None:
    jfk, conversation, spanish = (samples(p, tmp_path) for p in (JFK, CONVERSATION, SPANISH))
    windows = [
        SpeechWindow(jfk, DecodeOptions(language="en", initial_prompt="Kennedy, 1961.")),
        SpeechWindow(conversation, DecodeOptions(language="en", word_timestamps=True)),
        SpeechWindow(spanish, DecodeOptions(language=None, word_timestamps=True)),
        SpeechWindow(spanish, DecodeOptions(language="es", task="translate")),
    ]
    batched = base.decode_windows(windows)
    for window, result in zip(windows, batched, strict=True):
        alone = base.transcribe(Audio(window.samples), replace(window.options, vad_filter=False))
        assert shape(result.segments) == shape(alone.segments)
        assert result.language == alone.language
    assert batched[2].language == "es" and batched[2].language_probability > 0.5
    texts = ["".join(s.text for s in r.segments).lower() for r in batched]
    assert "playa" in texts[2] and "beach" in texts[3]
    assert len(batched[1].segments) >= 3  # timestamp tokens cut a window into sentences


def test_only_the_window_that_fails_its_checks_is_decoded_again(
    base: CTranslate2Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jfk, conversation = samples(JFK, tmp_path), samples(CONVERSATION, tmp_path)
    windows = [SpeechWindow(a, DecodeOptions(language="en")) for a in (jfk, conversation)]
    first = base.decode_windows(windows)
    scores = [r.segments[0].avg_logprob for r in first]
    assert all(s.temperature == 0.0 for r in first for s in r.segments)
    # A floor between the two windows' scores: exactly one of them now fails.
    monkeypatch.setattr(ctranslate2_windows, "LOG_PROB_THRESHOLD", sum(scores) / 2)
    decoder = base._windows
    calls: list[tuple[float, int]] = []
    generate = decoder._generate

    def recording(encoded: Any, prompts: list[list[int]], temperature: float, beam: int) -> Any:
        calls.append((temperature, len(prompts)))
        return generate(encoded, prompts, temperature, beam)

    monkeypatch.setattr(decoder, "_generate", recording)
    again = base.decode_windows(windows)
    worse = int(np.argmin(scores))
    assert calls[0] == (0.0, 2)  # both windows in the greedy pass
    assert [n for _, n in calls[1:]] == [1] * (len(calls) - 1) and len(calls) > 1
    assert [t for t, _ in calls[1:]] == [0.2, 0.4, 0.6, 0.8, 1.0][: len(calls) - 1]
    assert shape(again[1 - worse].segments) == shape(first[1 - worse].segments)
    assert again[1 - worse].segments[0].temperature == 0.0
    assert again[worse].segments[0].temperature > 0.0
    # A temperature the client set is the only one tried, even when the window fails.
    calls.clear()
    fixed = [
        SpeechWindow(w.samples, DecodeOptions(language="en", temperature=0.3)) for w in windows
    ]
    base.decode_windows(fixed)
    assert calls == [(0.3, 2)]


def test_a_window_whose_decode_stops_early_is_finished_from_where_it_stopped(
    tiny_en: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whisper may end a window's decode on a timestamp pair well before the window's end
    ("the next segment starts here"); the sequential decoder seeks there and goes on, and
    so must the batched decoder, or that speech is lost (it was: +8 WER points on 10 min)."""
    model = CTranslate2Engine("cpu", "int8", 1, 0, 1).load("tiny.en", tiny_en)
    audio = np.concatenate([samples(RAPID, tmp_path), samples(CONVERSATION, tmp_path)])
    rounds: list[int] = []
    decode = model._windows._decode_with_fallback

    def counting(views: Any, *args: Any) -> Any:
        rounds.append(len(views))
        return decode(views, *args)

    monkeypatch.setattr(model._windows, "_decode_with_fallback", counting)
    options = DecodeOptions(language="en", word_timestamps=True)
    (result,) = model.decode_windows([SpeechWindow(audio, options)])
    alone = model.transcribe(Audio(audio), replace(options, vad_filter=False))
    assert rounds == [1, 1]  # the window, then the rest of it after the early stop
    assert [s.text for s in result.segments] == [s.text for s in alone.segments]
    assert "afternoon" in result.segments[-1].text  # the conversation's last sentence
    # The sequential decoder also prompts the second round with the first round's text;
    # this one does not (rounds of many windows stay one batch), so times may move a little.
    ours = [w for s in result.segments for w in s.words]
    theirs = [w for s in alone.segments for w in s.words]
    assert [w.text for w in ours] == [w.text for w in theirs]
    assert max(abs(a.start_ms - b.start_ms) for a, b in zip(ours, theirs, strict=True)) <= 200
