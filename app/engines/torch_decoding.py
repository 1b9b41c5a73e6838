"""Batched Whisper decoding in PyTorch for speech windows of <= 30 s, with Whisper's
temperature fallback and quality checks applied to each window on its own.

Windows are encoded together and decoded together (one decoder step for the whole batch
per token, KV cache kept). After a pass, each window is checked as faster-whisper checks
it: text that compresses too well (repetition loops) or too low an average log-probability
sends *that window* to the next temperature of its schedule, sampled; a window whose
no-speech probability is high and whose text is improbable is silence and is not retried.
Windows never condition on each other's text, so any windows can share a batch (the
batched decoder's contract; the sequential engine is the one that carries text along).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import torch

from app.engines.base import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
)
from app.engines.torch_compile import Encode
from app.engines.torch_selection import Selection, Vocabulary
from app.engines.torch_static_decoder import StaticDecoder

_CHECK_EVERY = 2  # decoder steps between checks that every window has ended
_CHECK_LAG = 2  # checks queued on the GPU before the host reads the oldest one


@dataclass(frozen=True)
class WindowTask:
    """One window to decode: the tokens it starts from, where the <|startoftranscript|>
    token sits in them (its logits give the no-speech probability), its temperatures."""

    prefix: tuple[int, ...]
    sot_index: int
    temperatures: tuple[float, ...]
    timestamps: bool = False  # decode timestamp tokens (segments), else text only
    seed: int = 0
    """Where its sampled passes draw their noise from (app/engines/torch_selection.py): a
    hash of the window's input, so that the same window samples the same tokens."""


@dataclass(frozen=True)
class WindowResult:
    tokens: tuple[int, ...]  # text tokens, no specials, no end-of-text
    token_probs: tuple[float, ...]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    is_silence: bool


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


class WindowDecoder:
    def __init__(self, model: Any, vocabulary: Vocabulary, decode_text: Any) -> None:
        """`model`: transformers' WhisperForConditionalGeneration; `decode_text`: token ids
        -> text (for the compression check)."""
        self.model = model
        self.vocabulary = vocabulary
        self.decode_text = decode_text
        self.max_positions = int(model.config.max_target_positions)
        self.static = StaticDecoder(model)
        self._chooser: Selection | None = None
        self.compiled_encoder: Encode | None = None  # app/engines/torch_compile.py

    def _selection(self, vocabulary_size: int, device: torch.device) -> Selection:
        """The choice buffers, as many rows as the decoder's caches (graphs captured with
        older buffers are dropped when they are replaced)."""
        chooser = self._chooser
        if chooser is None or chooser.capacity != self.static.capacity:
            self.static.forget_graphs()
            chooser = Selection(
                self.vocabulary, vocabulary_size, self.static.capacity, self.max_positions, device
            )
            self._chooser = chooser
        return chooser

    @torch.inference_mode()
    def encode(self, mels: torch.Tensor) -> torch.Tensor:
        if self.compiled_encoder is not None:  # it converts as it copies the batch
            return self.compiled_encoder(mels)
        return self.model.model.encoder(mels.to(self.model.dtype)).last_hidden_state

    @torch.inference_mode()
    def decode(
        self,
        states: torch.Tensor,
        tasks: list[WindowTask],
    ) -> list[WindowResult]:
        """Every window through its temperature schedule; `states`: their encoder outputs,
        in the order of `tasks`, as are the results."""
        attempts: list[list[WindowResult]] = [[] for _ in tasks]
        pending = list(range(len(tasks)))
        round_ = 0
        while pending:
            groups: dict[tuple[float, int, int, bool], list[int]] = defaultdict(list)
            for i in pending:  # one pass: one temperature, prefix length and kind of output
                task = tasks[i]
                key = (task.temperatures[round_], len(task.prefix), task.sot_index, task.timestamps)
                groups[key].append(i)
            for (temperature, _, sot_index, timestamps), members in groups.items():
                results = self._pass(
                    states[members] if len(members) < len(tasks) else states,
                    [tasks[i].prefix for i in members],
                    sot_index,
                    temperature,
                    timestamps,
                    [zlib.crc32(f"{tasks[i].seed}:{round_}".encode()) for i in members],
                )
                for i, result in zip(members, results, strict=True):
                    attempts[i].append(result)
            round_ += 1
            pending = [
                i
                for i in pending
                if _needs_fallback(attempts[i][-1]) and round_ < len(tasks[i].temperatures)
            ]
        return [_best(a) for a in attempts]

    def _pass(
        self,
        states: torch.Tensor,
        prefixes: list[tuple[int, ...]],
        sot_index: int,
        temperature: float,
        timestamps: bool,
        seeds: list[int],
    ) -> list[WindowResult]:
        vocab, decoder = self.vocabulary, self.static
        batch, device = len(prefixes), states.device
        ids = torch.tensor(prefixes, device=device)
        hidden = decoder.prefill(states, ids)
        no_speech_t = decoder.logits(hidden[:, sot_index]).softmax(-1)[:, vocab.no_speech]
        logits = decoder.logits(hidden[:, -1])
        selection = self._selection(logits.shape[-1], device)
        selection.reset()
        selection.seed(seeds)
        length = ids.shape[1]
        done = 0
        ended = _EndWatch(device)
        # Everything stays on the device until the pass ends; whether every window has
        # ended is read a few steps late (_EndWatch), so the host keeps steps queued ahead
        # of the GPU instead of draining its queue at each check.
        for step in range(self.max_positions - length):
            if step == 0 or temperature > 0:
                if step:  # the previous choice is in the decoder's token buffer
                    logits = decoder.step(decoder.tokens[:batch], length + step - 1)
                chosen = selection.choose(logits, batch, timestamps, temperature)
                decoder.tokens[:batch].copy_(chosen)
                decoder.position.fill_(length + step)
            else:  # greedy: the decoder's step and the choice are one graph

                def greedy(rows: int, visible: int, flag: bool = timestamps) -> None:
                    chosen = selection.choose(decoder.step_logits(rows, visible), rows, flag)
                    decoder.tokens[:rows].copy_(chosen)
                    decoder.position.add_(1)

                visible = decoder.visible_length(length + step - 1)
                decoder.replay(("greedy", timestamps), batch, visible, greedy, selection.buffers)
            done = step + 1
            if step % _CHECK_EVERY == 0 and ended.post(selection.finished[:batch].all()):
                break
        no_speech = no_speech_t.tolist()
        chosen_all = selection.tokens[:batch, :done]
        logprob_all = selection.logprobs[:batch, :done]
        sum_logprob = selection.sum_logprob[:batch]
        tokens, probs = [], []
        for row, logprob_row in zip(chosen_all.tolist(), logprob_all.tolist(), strict=True):
            length = row.index(vocab.eot) if vocab.eot in row else len(row)
            tokens.append(row[:length])
            probs.append([math.exp(x) for x in logprob_row[:length]])
        results = []
        for b, total in enumerate(sum_logprob.tolist()):
            avg_logprob = total / (len(tokens[b]) + 1)
            ratio = compression_ratio(self.decode_text(tokens[b]))
            silent = no_speech[b] > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD
            results.append(
                WindowResult(
                    tuple(tokens[b]),
                    tuple(probs[b]),
                    temperature,
                    avg_logprob,
                    ratio,
                    float(no_speech[b]),
                    silent,
                )
            )
        return results


class _EndWatch:
    """Whether every window has ended, asked on the device and answered on the host `_CHECK_LAG`
    checks later (CUDA: a copy to pinned memory and an event; CPU: at once). Reading it late
    costs a few extra steps for rows that have ended (they only repeat end-of-text); reading
    it at once would leave the GPU idle while the host wakes up and queues the next step."""

    def __init__(self, device: torch.device) -> None:
        self._lag = _CHECK_LAG if device.type == "cuda" else 0
        self._posted: deque[tuple[torch.Tensor, torch.cuda.Event]] = deque()

    def post(self, all_ended: torch.Tensor) -> bool:
        """Queue this check; True when the oldest check still waiting said "ended"."""
        if not self._lag:
            return bool(all_ended)
        event = torch.cuda.Event()
        self._posted.append((all_ended.to("cpu", non_blocking=True), event))
        event.record()
        if len(self._posted) <= self._lag:
            return False
        host, event = self._posted.popleft()
        event.synchronize()
        return bool(host)


def _needs_fallback(result: WindowResult) -> bool:
    if result.is_silence:  # no hotter pass changes the no-speech probability
        return False
    return (
        result.compression_ratio > COMPRESSION_RATIO_THRESHOLD
        or result.avg_logprob < LOG_PROB_THRESHOLD
    )


def _best(attempts: list[WindowResult]) -> WindowResult:
    """The last attempt if it passed; else, as faster-whisper chooses, the most probable
    attempt among those that did not loop, or among all."""
    if not _needs_fallback(attempts[-1]):
        return attempts[-1]
    calm = [a for a in attempts if a.compression_ratio <= COMPRESSION_RATIO_THRESHOLD]
    return max(calm or attempts, key=lambda a: a.avg_logprob)
