"""PyTorch engine: Whisper through transformers (SDPA attention), for NVIDIA GPUs first.

Models are the CTranslate2 folders the registry hands every engine, converted once into
transformers' layout (app/models/ct2_to_torch.py, checked tensor by tensor). Features are
computed on the model's device; windows of one call are encoded and decoded as one batch
(app/engines/torch_decoding.py: greedy, per-window temperature fallback and quality
checks); word times come from cross-attention DTW (app/engines/torch_audio.py). With
TORCH_COMPILE (on with CUDA) the encoder runs through torch.compile, compiled when the
model loads (app/engines/torch_compile.py).

Windows decode with timestamp tokens (Whisper's rules, app/engines/torch_selection.py)
and are cut into segments at them; a window whose decode ends on a timestamp pair before its
end is finished in a further round from there, as the sequential decoder seeks. Differences
from the CTranslate2 engine, on purpose or not yet done: decoding is greedy (`beam_size` is
not used), and windows do not carry the previous window's text as a prompt; the request's
own prompt is used. `decode_windows` is the window scheduler's entry (each window with its
own options); `transcribe` cuts one recording into windows and calls it.
"""

from __future__ import annotations

import gc
import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.domain import Audio, DecodeOptions, LanguageGuess, Segment, Transcript, Word
from app.engines.base import (
    SpeechWindow,
    WindowText,
    english_only_guess,
    prompt_with_hotwords,
    temperature_schedule,
    whisper_transcript,
)
from app.engines.timestamp_tokens import split_at_timestamps
from app.engines.torch_audio import FRAMES, SAMPLE_RATE, WINDOW_SAMPLES, log_mel, word_times
from app.engines.torch_decoding import WindowDecoder, WindowResult, WindowTask
from app.engines.torch_segments import (
    features_from,
    ms,
    pass_segments,
    sample_bounds,
    shifted,
)
from app.engines.torch_selection import Vocabulary
from app.languages import LANGUAGE_NAMES
from app.models.ct2_to_torch import convert

log = logging.getLogger(__name__)

_MAX_PROMPT_TOKENS = 223  # Whisper keeps the last half of its 448-token context for prompts


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchWhisperModel:
    def __init__(self, name: str, folder: Path, model: Any, batch_size: int) -> None:
        import tokenizers
        import torch
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.name = name
        self._model = model
        self._batch_size = batch_size
        generation = json.loads((folder / "generation_config.json").read_text())
        self.english_only = not generation["is_multilingual"]
        self._heads = [(int(a), int(b)) for a, b in generation["alignment_heads"]]
        self._hf_tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer_class = Tokenizer
        base = self._tokenizer("transcribe", "en")
        self._vocabulary = Vocabulary(
            eot=base.eot,
            no_speech=base.no_speech,
            timestamp_begin=base.timestamp_begin,
            no_timestamps=base.no_timestamps,
            blank=(*base.encode(" "), base.eot),
            suppress=tuple(get_suppressed_tokens(base, (-1,)) or ()),
        )
        self._decoder = WindowDecoder(model, self._vocabulary, base.decode)
        n_mels = int(model.config.num_mel_bins)
        filters = FeatureExtractor(feature_size=n_mels).mel_filters
        self._filters = torch.from_numpy(filters).to(model.device)

    def _tokenizer(self, task: str, language: str | None) -> Any:
        return self._tokenizer_class(
            self._hf_tokenizer, not self.english_only, task=task, language=language
        )

    def transcribe(
        self,
        audio: Audio,
        options: DecodeOptions,
        windows: list[tuple[float, float]] | None = None,
    ) -> Transcript:
        samples = np.asarray(audio.samples, dtype=np.float32)
        bounds = sample_bounds(len(samples), windows)
        language, probability = ("en", 1.0) if self.english_only else (options.language, 1.0)
        # Without a language, the first window goes alone: its guess holds for the rest.
        size = self._batch_size
        firsts = (
            [0, *range(1, len(bounds), size)] if language is None else range(0, len(bounds), size)
        )
        segments: list[Segment] = []
        for first in firsts:
            chunk = bounds[first : first + (1 if language is None else size)]
            batch = [
                SpeechWindow(samples[a:b], replace(options, language=language)) for a, b in chunk
            ]
            for (start, _), text in zip(chunk, self.decode_windows(batch), strict=True):
                if language is None:
                    language, probability = text.language, text.language_probability
                offset = ms(start / SAMPLE_RATE)
                segments.extend(
                    shifted(segment, offset, len(segments), start // 160)
                    for segment in text.segments
                )
        return whisper_transcript(
            self.name, tuple(segments), language or "en", probability, audio.duration_ms, options
        )

    def decode_windows(self, windows: Sequence[SpeechWindow]) -> list[WindowText]:
        """Rounds of batched decoding with timestamp tokens: whole windows first, then, as
        the sequential decoder seeks, the rest of any window whose decode ended on a
        timestamp pair before its end (sliced from the window's own features)."""
        if not windows:
            return []
        first_mels, frames = log_mel(
            [np.asarray(w.samples, dtype=np.float32) for w in windows], self._filters
        )
        found: list[list[Segment]] = [[] for _ in windows]
        languages: list[tuple[str, float]] = []
        tokenizers: list[Any] = []
        tasks: list[WindowTask] = []
        todo = [(i, 0) for i in range(len(windows))]  # (window, first mel frame to decode)
        # Each window samples from its own input's hash: the same words whatever its batch.
        seeds = [zlib.crc32(np.asarray(w.samples, dtype=np.float32).tobytes()) for w in windows]
        while todo:
            states = self._decoder.encode(features_from(first_mels, todo))
            if not languages:
                languages = self._languages(windows, states)
                tokenizers = [
                    self._tokenizer(w.options.task, code)
                    for w, (code, _) in zip(windows, languages, strict=True)
                ]
                tasks = [self._task(w.options, t) for w, t in zip(windows, tokenizers, strict=True)]
            results = self._decoder.decode(
                states, [replace(tasks[i], seed=seeds[i] ^ seek) for i, seek in todo]
            )
            later = []
            for k, ((i, seek), result) in enumerate(zip(todo, results, strict=True)):
                if result.is_silence:  # the sequential decoder skips the rest of it too
                    continue
                content = frames[i] - seek
                pieces, advance = split_at_timestamps(
                    result.tokens, self._vocabulary.timestamp_begin, content
                )
                words: list[tuple[Word, int]] = []
                if windows[i].options.word_timestamps:
                    words = self._words(states[k : k + 1], tokenizers[i], result, content)
                found[i].extend(
                    pass_segments(pieces, result, tokenizers[i], words, seek, self._vocabulary.eot)
                )
                if 0 < advance < content:
                    later.append((i, seek + advance))
            todo = later
        return [
            WindowText(tuple(replace(s, id=n) for n, s in enumerate(segments)), *language)
            for segments, language in zip(found, languages, strict=True)
        ]

    def _task(self, options: DecodeOptions, tokenizer: Any) -> WindowTask:
        sot_sequence = list(tokenizer.sot_sequence)
        prefix = sot_sequence
        prompt = prompt_with_hotwords(options.initial_prompt, options.hotwords)
        if prompt:
            prompt_tokens = tokenizer.encode(" " + prompt.strip())[-_MAX_PROMPT_TOKENS:]
            prefix = [tokenizer.sot_prev, *prompt_tokens, *sot_sequence]
        temperatures = temperature_schedule(options.temperature)
        return WindowTask(
            tuple(prefix), len(prefix) - len(sot_sequence), temperatures, timestamps=True
        )

    def _words(
        self, states: Any, tokenizer: Any, result: WindowResult, frames: int
    ) -> list[tuple[Word, int]]:
        """The pass's words (times from its start), each with its count of text tokens."""
        text = [
            (t, p)
            for t, p in zip(result.tokens, result.token_probs, strict=True)
            if t < tokenizer.eot
        ]
        timed = word_times(
            self._model,
            states,
            [*tokenizer.sot_sequence, tokenizer.no_timestamps],
            [t for t, _ in text],
            [p for _, p in text],
            self._heads,
            tokenizer.split_to_word_tokens,
            tokenizer.eot,
            frames,
        )
        return [
            (Word(ms(w.start_s), ms(w.end_s), w.text, w.probability), w.token_count) for w in timed
        ]

    def _languages(self, windows: Sequence[SpeechWindow], states: Any) -> list[tuple[str, float]]:
        """Each window's language: given, English for English-only models, else Whisper's
        guess from that window's encoder states."""
        known = [("en", 1.0) if self.english_only else (w.options.language, 1.0) for w in windows]
        unknown = [i for i, (code, _) in enumerate(known) if not code]
        if unknown:
            guesses = self._language_probs(states[unknown])
            for i, probs in zip(unknown, guesses, strict=True):
                known[i] = max(probs.items(), key=lambda item: item[1])
        return known  # type: ignore[return-value]

    def detect_language(self, audio: Audio) -> LanguageGuess:
        if self.english_only:
            return english_only_guess()
        samples = np.asarray(audio.samples, dtype=np.float32)[:WINDOW_SAMPLES]
        mels, _ = log_mel([samples], self._filters)
        probs = self._language_probs(self._decoder.encode(mels))[0]
        top = sorted(probs.items(), key=lambda item: item[1], reverse=True)[:10]
        return LanguageGuess(top[0][0], float(top[0][1]), dict(top))

    def _language_probs(self, states: Any) -> list[dict[str, float]]:
        """Whisper's guess per window: one decoder step after <|startoftranscript|>."""
        import torch

        sot = self._hf_tokenizer.token_to_id("<|startoftranscript|>")
        codes = [
            c for c in LANGUAGE_NAMES if self._hf_tokenizer.token_to_id(f"<|{c}|>") is not None
        ]
        ids = [self._hf_tokenizer.token_to_id(f"<|{c}|>") for c in codes]
        with torch.inference_mode():
            start = torch.full((states.shape[0], 1), sot, device=states.device)
            hidden = self._model.model.decoder(
                input_ids=start, encoder_hidden_states=states
            ).last_hidden_state
            logits = self._model.proj_out(hidden[:, -1]).float()
        probs = logits[:, ids].softmax(-1).tolist()
        return [dict(zip(codes, row, strict=True)) for row in probs]

    def compile_encoder(self) -> None:
        """The encoder through torch.compile from now on, if it compiles (else as it was)."""
        from app.engines.torch_compile import compiled_encoder

        encoder, mels = self._model.model.encoder, int(self._model.config.num_mel_bins)
        self._decoder.compiled_encoder = compiled_encoder(encoder, mels, FRAMES)

    def unload(self) -> None:
        del self._decoder  # it holds the model too, and its caches and CUDA graphs
        self._model = None
        gc.collect()


class TorchEngine:
    name = "torch"
    runs_torch = True

    def __init__(
        self,
        cache_dir: Path,
        device: str,
        compute_type: str,
        batch_size: int,
        compile_encoder: bool | None = None,
    ) -> None:
        """`compile_encoder`: torch.compile the encoder at load; None = on CUDA only."""
        self.device = resolve_device(device)
        if compute_type == "auto":
            compute_type = "float16" if self.device.startswith("cuda") else "float32"
        self.compute_type = compute_type
        on_cuda = self.device.startswith("cuda")
        self.compile_encoder = on_cuda if compile_encoder is None else compile_encoder
        self._cache_dir = cache_dir
        self._batch_size = batch_size

    def load(self, name: str, path: Path) -> TorchWhisperModel:
        import torch
        from transformers import WhisperForConditionalGeneration

        folder = convert(path, self._cache_dir, name)
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(
            self.compute_type, torch.float32
        )
        log.info("loading %s from %s on %s (%s, sdpa)", name, folder, self.device, dtype)
        model = WhisperForConditionalGeneration.from_pretrained(
            folder, dtype=dtype, attn_implementation="sdpa"
        )
        loaded = TorchWhisperModel(name, folder, model.to(self.device).eval(), self._batch_size)
        return self.prepared(loaded)

    def prepared[M: TorchWhisperModel](self, loaded: M) -> M:
        """A loaded model made ready to serve: its encoder compiled where that is on."""
        if self.compile_encoder:
            loaded.compile_encoder()
        return loaded
