"""Word alignment stage: whisperX's wav2vec2 forced alignment where its model can be had,
PocketSphinx's for English offline (app/alignment/phonetic.py), otherwise the DTW word times
Whisper already produced. Responses say which one was used."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.alignment.phonetic import AlignedWords
from app.config import Settings
from app.domain import Audio, Segment, Transcript, Word
from app.intervals import IntervalIndex
from app.models.cache import ModelCache
from app.models.hub import HubClient

log = logging.getLogger(__name__)


class _AlignModel:
    def __init__(self, model: Any, metadata: dict[str, Any]) -> None:
        self.model = model
        self.metadata = metadata

    def unload(self) -> None:
        self.model = None


@dataclass(frozen=True)
class AlignmentResult:
    transcript: Transcript
    notes: tuple[str, ...] = ()


class Aligner:
    def __init__(self, settings: Settings, hub: HubClient, cache: ModelCache, device: str) -> None:
        self._settings = settings
        self._hub = hub
        self._cache = cache
        self._device = "cuda" if device == "cuda" else "cpu"

    def method(self, transcript: Transcript) -> str | None:
        """The aligner that retimes this transcript's words (`wav2vec2`, `pocketsphinx`), or
        None when Whisper's DTW times stay: words not asked for, a translation (its English
        words were never said in the audio), or nothing that can align this language."""
        if not transcript.segments or not transcript.word_timestamps:
            return None
        if transcript.task != "transcribe":
            return None
        mode = self._settings.alignment
        if mode == "wav2vec2" or (mode == "auto" and self._hub.reachable()):
            return "wav2vec2"
        english = transcript.language == "en"
        if mode == "pocketsphinx" or (mode == "auto" and _has_pocketsphinx()):
            return "pocketsphinx" if english else None
        return None

    def align_wav2vec2(self, transcript: Transcript, audio: Audio) -> AlignmentResult:
        """Blocking (torch). The transcript with whisperX's word times, or unchanged with a
        note when its model cannot be had. PocketSphinx spans are aligned in the CPU
        workers instead (app/pipeline/align.py)."""
        language = transcript.language
        try:
            import whisperx

            def load() -> _AlignModel:
                model, metadata = whisperx.load_align_model(language, self._device)
                return _AlignModel(model, metadata)

            with self._cache.use(f"alignment/{language}", load) as loaded:
                result = whisperx.align(
                    [
                        {"start": s.start_ms / 1000, "end": s.end_ms / 1000, "text": s.text}
                        for s in transcript.segments
                    ],
                    loaded.model,
                    loaded.metadata,
                    np.asarray(audio.samples),
                    self._device,
                    return_char_alignments=False,
                )
        except Exception as exc:  # no model offline, no punkt data, unsupported language
            note = (
                f"wav2vec2 alignment unavailable for '{language}' ({exc}); "
                "word times are whisper-dtw"
            )
            log.warning(note)
            return AlignmentResult(transcript, (note,))
        return AlignmentResult(apply_alignment(transcript, result.get("segments", [])))


PHONETIC_PARTLY_NOTE = (
    "pocketsphinx could not align some stretches of words (misheard words, an unusual "
    "voice or channel); those words keep Whisper's DTW times"
)


def words_of(transcript: Transcript) -> list[Word]:
    return [w for s in transcript.segments for w in s.words]


def with_phonetic_times(transcript: Transcript, aligned: AlignedWords) -> AlignmentResult:
    """The transcript with PocketSphinx's times on its words (`aligned`: the words of
    `words_of(transcript)`, in order), each segment spanning its words."""
    if aligned.kept_whisper:
        log.info(
            "pocketsphinx aligned %d of %d stretches of words; the rest keep whisper-dtw",
            aligned.stretches - aligned.kept_whisper,
            aligned.stretches,
        )
    if aligned.kept_whisper == aligned.stretches:
        return AlignmentResult(transcript, (PHONETIC_PARTLY_NOTE,))
    retimed = iter(aligned.words)
    segments = tuple(
        _spanning(s, tuple(next(retimed) for _ in s.words)) for s in transcript.segments
    )
    notes = (PHONETIC_PARTLY_NOTE,) if aligned.kept_whisper else ()
    return AlignmentResult(
        replace(transcript, segments=segments, word_timestamps="pocketsphinx"), notes
    )


def _spanning(segment: Segment, words: tuple[Word, ...]) -> Segment:
    """The segment with its aligned words, spanning them (as whisperX's alignment does)."""
    if not words:
        return segment
    return replace(segment, start_ms=words[0].start_ms, end_ms=words[-1].end_ms, words=words)


def _has_pocketsphinx() -> bool:
    return importlib.util.find_spec("pocketsphinx") is not None


def _timed_words(aligned: list[dict[str, Any]], start_ms: int, end_ms: int) -> list[Word]:
    """whisperX's words in order; ones it could not align keep a time between neighbours."""
    raw = [w for a in aligned for w in (a.get("words") or [])]
    # The next aligned start after each word, computed once from the back (linear).
    following: list[float] = [end_ms / 1000] * len(raw)
    upcoming = end_ms / 1000
    for i in range(len(raw) - 1, -1, -1):
        following[i] = upcoming
        if raw[i].get("start") is not None:
            upcoming = raw[i]["start"]
    words: list[Word] = []
    for i, item in enumerate(raw):
        start, end = item.get("start"), item.get("end")
        if start is None or end is None:
            # Numerals and symbols have no characters wav2vec2 knows: keep the word, timed
            # from the previous aligned word's end to the next one's start.
            previous_end = words[-1].end_ms / 1000 if words else start_ms / 1000
            start, end = previous_end, max(previous_end, following[i])
        words.append(
            Word(
                round(start * 1000),
                round(end * 1000),
                " " + str(item["word"]),
                float(item.get("score") or 0.0),
            )
        )
    return words


def apply_alignment(transcript: Transcript, aligned: list[dict[str, Any]]) -> Transcript:
    """Replace word times with whisperX's; segments keep Whisper's text and statistics.
    whisperX may split segments into sentences, so words go back to our segments by time:
    the segment holding a word's middle, else the one with the nearest edge."""
    segments = transcript.segments
    words = _timed_words(aligned, segments[0].start_ms, segments[-1].end_ms)
    if not words:
        return transcript
    index = IntervalIndex([(s.start_ms, s.end_ms) for s in segments])
    buckets: list[list[Word]] = [[] for _ in segments]
    for word in words:
        middle = (word.start_ms + word.end_ms) / 2
        found = index.containing(middle)
        if found is None:
            found = index.nearest(middle)
        assert found is not None  # segments is not empty
        buckets[found].append(word)
    return replace(
        transcript,
        segments=tuple(
            replace(s, words=tuple(b) or s.words) for s, b in zip(segments, buckets, strict=True)
        ),
        word_timestamps="wav2vec2",
    )
