"""PyTorch engine: Whisper through transformers (SDPA attention), for NVIDIA GPUs first.

Models are the CTranslate2 folders the registry hands every engine, converted once into
transformers' layout (app/models/ct2_to_torch.py, checked tensor by tensor). Features are
computed on the model's device; windows of one call are encoded and decoded as one batch
(app/engines/torch_decoding.py: greedy, per-window temperature fallback and quality
checks); word times come from cross-attention DTW (app/engines/torch_audio.py).

Differences from the CTranslate2 engine, on purpose or not yet done: decoding is greedy
(`beam_size` is not used), each window is one segment (no timestamp tokens), and windows
do not carry the previous window's text as a prompt; the request's own prompt is used.
"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from app.domain import Audio, DecodeOptions, LanguageGuess, Segment, Transcript, Word
from app.engines.base import (
    engine_transcript,
    english_only_guess,
    prompt_with_hotwords,
    temperature_schedule,
)
from app.engines.torch_audio import SAMPLE_RATE, WINDOW_SAMPLES, log_mel, word_times
from app.engines.torch_decoding import Vocabulary, WindowDecoder, WindowTask
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
            blank=(*base.encode(" "), base.eot),
            suppress=tuple(get_suppressed_tokens(base, (-1,)) or ()),
        )
        self._decoder = WindowDecoder(model, self._vocabulary, base.decode)
        n_mels = int(model.config.num_mel_bins)
        filters = FeatureExtractor(feature_size=n_mels).mel_filters
        self._filters = torch.from_numpy(filters).to(model.device)
        self._generator = torch.Generator(device=model.device).manual_seed(0)

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
        bounds = _sample_bounds(len(samples), windows)
        pieces = [samples[a:b] for a, b in bounds]
        if self.english_only:
            language, probability = "en", 1.0
        elif options.language:
            language, probability = options.language, 1.0
        else:
            guess = self._language_probs(pieces[0] if pieces else samples[:WINDOW_SAMPLES])
            language, probability = max(guess.items(), key=lambda item: item[1])
        tokenizer = self._tokenizer(options.task, language)
        sot_sequence = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        prefix = sot_sequence
        prompt = prompt_with_hotwords(options.initial_prompt, options.hotwords)
        if prompt:
            prompt_tokens = tokenizer.encode(" " + prompt.strip())[-_MAX_PROMPT_TOKENS:]
            prefix = [tokenizer.sot_prev, *prompt_tokens, *sot_sequence]
        temperatures = temperature_schedule(options.temperature)
        segments: list[Segment] = []
        for first in range(0, len(pieces), self._batch_size):
            batch = pieces[first : first + self._batch_size]
            mels, frames = log_mel(batch, self._filters)
            task = WindowTask(tuple(prefix), len(prefix) - len(sot_sequence), temperatures)
            states = self._decoder.encode(mels)
            results = self._decoder.decode(states, [task] * len(batch), self._generator)
            for k, result in enumerate(results):
                text = tokenizer.decode(list(result.tokens))
                if result.is_silence or not text.strip():
                    continue
                start, end = bounds[first + k]
                words: tuple[Word, ...] = ()
                if options.word_timestamps:
                    timed = word_times(
                        self._model,
                        states[k : k + 1],
                        sot_sequence,
                        list(result.tokens),
                        list(result.token_probs),
                        self._heads,
                        tokenizer.split_to_word_tokens,
                        tokenizer.eot,
                        frames[k],
                    )
                    offset = start / SAMPLE_RATE
                    words = tuple(
                        Word(_ms(offset + w.start_s), _ms(offset + w.end_s), w.text, w.probability)
                        for w in timed
                    )
                segments.append(
                    Segment(
                        id=len(segments),
                        seek=start // 160,
                        start_ms=words[0].start_ms if words else _ms(start / SAMPLE_RATE),
                        end_ms=words[-1].end_ms if words else _ms(end / SAMPLE_RATE),
                        text=text,
                        words=words,
                        tokens=result.tokens,
                        temperature=result.temperature,
                        avg_logprob=result.avg_logprob,
                        compression_ratio=result.compression_ratio,
                        no_speech_prob=result.no_speech_prob,
                    )
                )
        return engine_transcript(self.name, tuple(segments), language, probability, audio, options)

    def detect_language(self, audio: Audio) -> LanguageGuess:
        if self.english_only:
            return english_only_guess()
        probs = self._language_probs(np.asarray(audio.samples, dtype=np.float32)[:WINDOW_SAMPLES])
        top = sorted(probs.items(), key=lambda item: item[1], reverse=True)[:10]
        return LanguageGuess(top[0][0], float(top[0][1]), dict(top))

    def _language_probs(self, samples: np.ndarray) -> dict[str, float]:
        """Whisper's guess from the first window: one decoder step after <|startoftranscript|>."""
        import torch

        sot = self._hf_tokenizer.token_to_id("<|startoftranscript|>")
        codes = [
            c for c in LANGUAGE_NAMES if self._hf_tokenizer.token_to_id(f"<|{c}|>") is not None
        ]
        ids = [self._hf_tokenizer.token_to_id(f"<|{c}|>") for c in codes]
        mels, _ = log_mel([samples], self._filters)
        with torch.inference_mode():
            states = self._decoder.encode(mels)
            start = torch.tensor([[sot]], device=states.device)
            hidden = self._model.model.decoder(
                input_ids=start, encoder_hidden_states=states
            ).last_hidden_state
            logits = self._model.proj_out(hidden[0, -1]).float()
        probs = logits[ids].softmax(-1).tolist()
        return dict(zip(codes, probs, strict=True))

    def unload(self) -> None:
        self._model = None
        gc.collect()


class TorchEngine:
    name = "torch"
    runs_torch = True

    def __init__(self, cache_dir: Path, device: str, compute_type: str, batch_size: int) -> None:
        self.device = resolve_device(device)
        if compute_type == "auto":
            compute_type = "float16" if self.device.startswith("cuda") else "float32"
        self.compute_type = compute_type
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
        return TorchWhisperModel(name, folder, model.to(self.device).eval(), self._batch_size)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _sample_bounds(total: int, windows: list[tuple[float, float]] | None) -> list[tuple[int, int]]:
    """The windows in samples; without them, 30 s pieces of the whole audio."""
    if windows:
        return [(round(a * SAMPLE_RATE), min(round(b * SAMPLE_RATE), total)) for a, b in windows]
    return [(s, min(s + WINDOW_SAMPLES, total)) for s in range(0, total, WINDOW_SAMPLES)]
