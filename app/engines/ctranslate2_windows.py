"""Windows from many requests decoded as one CTranslate2 batch, each with its own options.

faster-whisper's BatchedInferencePipeline batches the windows of one file under one set of
options and decodes each window once, at one temperature. This decoder takes windows whose
language, task, prompt and temperature differ (the window scheduler mixes requests) and
keeps what the sequential decoder does per window: timestamp tokens that cut a window into
segments, and the temperature fallback with faster-whisper's quality checks (compression
ratio, average log-probability, no-speech), re-decoding only the windows that failed.
Pieces of faster-whisper used here (prompt building, timestamp splitting, DTW word times)
are its own methods, so both paths give the same answers for the same window.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.domain import Segment, Word
from app.engines.base import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    SpeechWindow,
    WindowText,
    temperature_schedule,
)

# faster-whisper's defaults for the sequential decoder (WhisperModel.transcribe).
_BEST_OF = 5
_MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1 s


@dataclass
class _Attempt:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float

    @property
    def failed(self) -> bool:
        silent = self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob < LOG_PROB_THRESHOLD
        poor = self.compression_ratio > COMPRESSION_RATIO_THRESHOLD or (
            self.avg_logprob < LOG_PROB_THRESHOLD
        )
        return poor and not silent

    @property
    def is_silence(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob <= LOG_PROB_THRESHOLD


class CT2WindowDecoder:
    def __init__(self, model: Any) -> None:
        """`model`: a faster_whisper.WhisperModel."""
        from faster_whisper.transcribe import WhisperModel

        self._model = model
        defaults = inspect.signature(WhisperModel.transcribe).parameters
        self._prepend = defaults["prepend_punctuations"].default
        self._append = defaults["append_punctuations"].default
        self._tokenizers: dict[tuple[str, str], Any] = {}
        self._suppress: list[int] | None = None

    def decode(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        """Rounds of batched decoding: the whole windows first, then, as the sequential
        decoder seeks, the rest of any window whose decode stopped at a timestamp before
        the window's end (Whisper's "the next segment starts here")."""
        from faster_whisper.audio import pad_or_trim

        if not windows:
            return []
        languages: list[tuple[str, float]] = []
        tokenizers: list[Any] = []
        prompts: list[list[int]] = []
        pieces: list[list[dict[str, Any]]] = [[] for _ in windows]
        mels = [self._mel(w.samples) for w in windows]
        last_speech: dict[int, float] = {}
        todo = [(i, 0) for i in range(len(windows))]  # (window, first mel frame to decode)
        while todo:
            views = [
                SpeechWindow(_from_frame(windows[i].samples, seek), windows[i].options)
                for i, seek in todo
            ]
            # Padded with zero frames to 30 s, exactly as the sequential decoder pads each
            # of its windows (so a window gives the same text either way).
            features = np.stack([np.asarray(pad_or_trim(mels[i][:, seek:])) for i, seek in todo])
            encoded = self._model.encode(features)
            if not languages:  # first round: whole windows, in order
                languages = self._languages(windows, encoded)
                tokenizers = [
                    self._tokenizer(w.options.task, code)
                    for w, (code, _) in zip(windows, languages, strict=True)
                ]
                prompts = [self._prompt(w, t) for w, t in zip(windows, tokenizers, strict=True)]
            attempts = self._decode_with_fallback(
                views,
                features,
                encoded,
                [prompts[i] for i, _ in todo],
                [tokenizers[i] for i, _ in todo],
            )
            found: list[list[dict[str, Any]]] = []
            later: list[tuple[int, int]] = []
            for (i, seek), view, attempt in zip(todo, views, attempts, strict=True):
                frames = _frames(view.samples)
                if attempt.is_silence:  # the sequential decoder skips the rest of it too
                    found.append([])
                    continue
                got, advance = self._split(attempt, tokenizers[i], frames, seek)
                found.append(got)
                if 0 < advance < frames:
                    later.append((i, seek + advance))
            self._add_words(todo, views, found, tokenizers, features, encoded, last_speech)
            for (i, _), got in zip(todo, found, strict=True):
                pieces[i].extend(got)
            todo = later
        return [
            WindowText(_segments(p, t), code, prob)
            for p, t, (code, prob) in zip(pieces, tokenizers, languages, strict=True)
        ]

    def _add_words(
        self,
        todo: list[tuple[int, int]],
        views: list[SpeechWindow],
        found: list[list[dict[str, Any]]],
        tokenizers: list[Any],
        features: np.ndarray,
        encoded: Any,
        last_speech: dict[int, float],
    ) -> None:
        """DTW word times for the pieces of this round that asked for them. One call per
        window: faster-whisper's word-time rules carry the end of the previous speech from
        segment to segment, which must not leak from one window (or request) into another;
        `last_speech` carries it from one round of a window to the next, as it does."""
        for k, (i, _) in enumerate(todo):
            if not (views[k].options.word_timestamps and found[k]):
                continue
            last_speech[i] = self._model.add_word_timestamps(
                [found[k]],
                tokenizers[i],
                self._subset(encoded, features, [k]),
                [_frames(views[k].samples)],
                self._prepend,
                self._append,
                last_speech.get(i, 0.0),
            )

    # --- pieces -----------------------------------------------------------------------------
    def _mel(self, samples: Any) -> np.ndarray:
        """The window's log-mel frames (100 per second of audio), computed once: the
        sequential decoder also slices later rounds out of the first round's mel."""
        extractor = self._model.feature_extractor
        clip = np.asarray(samples, dtype=np.float32)[: extractor.n_samples]
        return np.asarray(extractor(clip)[..., :-1])

    def _languages(self, windows: Sequence[SpeechWindow], encoded: Any) -> list[tuple[str, float]]:
        multilingual = self._model.model.is_multilingual
        if not multilingual:
            return [("en", 1.0)] * len(windows)
        known = [(w.options.language, 1.0) for w in windows]
        if all(code for code, _ in known):
            return known  # type: ignore[return-value]
        detected = self._model.model.detect_language(encoded)
        return [
            (code, p) if code else (detected[i][0][0][2:-2], float(detected[i][0][1]))
            for i, (code, p) in enumerate(known)
        ]

    def _tokenizer(self, task: str, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        key = (task, language)
        if key not in self._tokenizers:
            model = self._model
            self._tokenizers[key] = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task=task, language=language
            )
        return self._tokenizers[key]

    def _prompt(self, window: SpeechWindow, tokenizer: Any) -> list[int]:
        options = window.options
        previous = (
            tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        )
        prompt: list[int] = self._model.get_prompt(
            tokenizer, previous, without_timestamps=False, hotwords=options.hotwords
        )
        return prompt

    def _decode_with_fallback(
        self,
        windows: Sequence[SpeechWindow],
        features: np.ndarray,
        encoded: Any,
        prompts: list[list[int]],
        tokenizers: list[Any],
    ) -> list[_Attempt]:
        """Round k decodes every window still failing at its k-th temperature; windows whose
        schedules run out keep their best attempt, as faster-whisper does."""
        schedules = [temperature_schedule(w.options.temperature) for w in windows]
        tried: list[list[_Attempt]] = [[] for _ in windows]
        pending = list(range(len(windows)))
        for round_ in range(max(len(s) for s in schedules)):
            pending = [i for i in pending if round_ < len(schedules[i])]
            # One generate call per temperature, beam size and prompt length (CTranslate2
            # needs <|startoftranscript|> at the same position in every row of a batch).
            groups: list[tuple[tuple[float, int, int], list[int]]] = _group(
                pending,
                lambda i, k=round_: (
                    schedules[i][k],
                    windows[i].options.beam_size,
                    prompts[i].index(tokenizers[i].sot),
                ),
            )
            for (temperature, beam_size, _), indices in groups:
                results = self._generate(
                    self._subset(encoded, features, indices),
                    [prompts[i] for i in indices],
                    temperature,
                    beam_size,
                )
                for i, result in zip(indices, results, strict=True):
                    tried[i].append(_attempt(result, tokenizers[i], temperature))
            pending = [i for i in pending if tried[i][-1].failed]
            if not pending:
                break
        return [_pick(attempts) for attempts in tried]

    def _generate(
        self, encoded: Any, prompts: list[list[int]], temperature: float, beam_size: int
    ) -> list[Any]:
        sampling: dict[str, Any] = (
            {"beam_size": 1, "num_hypotheses": _BEST_OF, "sampling_topk": 0}
            | {"sampling_temperature": temperature}
            if temperature > 0
            else {"beam_size": beam_size}
        )
        return list(
            self._model.model.generate(
                encoded,
                prompts,
                max_length=self._model.max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_tokens=self._suppressed(),
                max_initial_timestamp_index=_MAX_INITIAL_TIMESTAMP_INDEX,
                **sampling,
            )
        )

    def _suppressed(self) -> list[int]:
        """The same for every language and task (special and non-speech tokens)."""
        from faster_whisper.transcribe import get_suppressed_tokens

        if self._suppress is None:
            any_tokenizer = next(iter(self._tokenizers.values()))
            self._suppress = list(get_suppressed_tokens(any_tokenizer, [-1]))
        return self._suppress

    def _subset(self, encoded: Any, features: np.ndarray, indices: list[int]) -> Any:
        """The encoder output of some windows of the batch (all of it when all are asked)."""
        import ctranslate2

        if len(indices) == len(features) and indices == sorted(indices):
            return encoded
        if self._model.model.device == "cpu":
            rows = np.asarray(encoded)[indices]
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(rows))
        return self._model.encode(features[indices])  # a GPU's output stays on the GPU

    def _split(
        self, attempt: _Attempt, tokenizer: Any, frames: int, seek: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Segments cut at the timestamp pairs (times from the window's start), and how many
        frames they cover: fewer than `frames` when the decode ended on a pair, which
        leaves the rest of the window to the next round, as faster-whisper's seek does."""
        pieces, advance, _ = self._model._split_segments_by_timestamps(
            tokenizer=tokenizer,
            tokens=attempt.tokens,
            time_offset=seek / 100,
            segment_size=frames,
            segment_duration=frames / 100,
            seek=0,
        )
        kept = []
        for piece in pieces:
            if any(t < tokenizer.eot for t in piece["tokens"]):
                kept.append({**piece, "seek": seek, "attempt": attempt})
        return kept, advance


def _frames(samples: Any) -> int:
    """Mel frames of content in the window (100 per second)."""
    return max(1, min(3000, len(samples) // 160))


def _from_frame(samples: Any, frame: int) -> Any:
    return samples[frame * 160 :] if frame else samples


def _group[K](indices: list[int], key: Any) -> list[tuple[K, list[int]]]:
    groups: dict[K, list[int]] = defaultdict(list)
    for i in indices:
        groups[key(i)].append(i)
    return list(groups.items())


def _attempt(result: Any, tokenizer: Any, temperature: float) -> _Attempt:
    from faster_whisper.transcribe import get_compression_ratio

    tokens = list(result.sequences_ids[0])
    # faster-whisper's recovery of the average log-probability from the returned score
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    text = tokenizer.decode(tokens).strip()
    return _Attempt(
        tokens, avg_logprob, float(result.no_speech_prob), get_compression_ratio(text), temperature
    )


def _pick(attempts: list[_Attempt]) -> _Attempt:
    """The last attempt when it passed, else the best one (by log-probability) among those
    not too repetitive, reported at the last temperature tried (as faster-whisper does)."""
    last = attempts[-1]
    if not last.failed:
        return last
    fluent = [a for a in attempts if a.compression_ratio <= COMPRESSION_RATIO_THRESHOLD]
    best = max(fluent or attempts, key=lambda a: a.avg_logprob)
    return _Attempt(
        best.tokens, best.avg_logprob, best.no_speech_prob, best.compression_ratio, last.temperature
    )


def _segments(pieces: list[dict[str, Any]], tokenizer: Any) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for piece in pieces:
        attempt: _Attempt = piece["attempt"]
        words = tuple(
            Word(_ms(w["start"]), _ms(w["end"]), w["word"], float(w["probability"]))
            for w in piece.get("words") or ()
        )
        out.append(
            Segment(
                id=len(out),
                start_ms=_ms(piece["start"]),
                end_ms=_ms(piece["end"]),
                text=tokenizer.decode(piece["tokens"]),
                words=words,
                tokens=tuple(int(t) for t in piece["tokens"]),
                temperature=attempt.temperature,
                avg_logprob=float(attempt.avg_logprob),
                compression_ratio=float(attempt.compression_ratio),
                no_speech_prob=float(attempt.no_speech_prob),
            )
        )
    return tuple(out)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
