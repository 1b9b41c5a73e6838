"""Choosing each window's next token, for a whole batch at once, in fixed buffers.

Everything a decoding step does after the decoder's logits happens here, as tensor work
with no host synchronisation and no Python branch on the data, so a greedy step (decoder
and choice together) can be captured as one CUDA graph: the suppressed tokens, Whisper's
timestamp rules (below), the choice (greedy, or sampled at a temperature), and the
bookkeeping (tokens and log-probabilities so far, which windows have ended).

Sampling draws each row's noise from that row's own seed (a hash of the seed, the step and
the token: Gumbel-max, the same distribution as sampling the softmax), never from a stream
shared by the batch: a window sampled at a temperature picks the same tokens whatever it is
batched with and whatever ran before it, so identical uploads get identical transcripts.

Whisper's timestamp rules (openai-whisper's decoder), each row on its own:
- `<|notimestamps|>` never; the first token is a timestamp of at most 1 s;
- timestamps come in pairs: after a closing pair only text (or the end) may follow, after
  one timestamp that follows text only another timestamp (or the end);
- timestamps never go back in time;
- when the timestamps together are likelier than any single text token, a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1 s, faster-whisper's and openai-whisper's default


@dataclass(frozen=True)
class Vocabulary:
    eot: int
    no_speech: int
    timestamp_begin: int
    no_timestamps: int
    blank: tuple[int, ...]  # suppressed at the first step only
    suppress: tuple[int, ...]  # suppressed at every step


_MASK = 0xFFFFFFFF


def uniform_noise(seeds: torch.Tensor, step: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(rows, columns) uniform numbers in (0, 1), each a function of its row's seed, the step
    and the column only (a 32-bit integer hash; every product stays below 2^63)."""
    x = (seeds[:, None] ^ ((step * 0x9E3779B1) & _MASK)) & _MASK
    x = (x * 0x01000193 + columns) & _MASK
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x045D9F3B) & _MASK
    x = x ^ (x >> 16)
    return ((x >> 8).float() + 0.5) / float(1 << 24)  # 24 bits: never 0 or 1 in float32


class Selection:
    """The choice state of up to `capacity` rows and `steps` tokens each."""

    def __init__(
        self, vocabulary: Vocabulary, size: int, capacity: int, steps: int, device: torch.device
    ) -> None:
        self.vocabulary, self.capacity = vocabulary, capacity
        columns = torch.arange(size, device=device)[None]
        begin = vocabulary.timestamp_begin

        def columns_in(ids: tuple[int, ...]) -> torch.Tensor:
            mask = torch.zeros(1, size, dtype=torch.bool, device=device)
            mask[0, [i for i in ids if 0 <= i < size]] = True
            return mask

        self._columns = columns
        self._never = columns_in((*vocabulary.suppress, vocabulary.no_timestamps))
        self._blank = columns_in(vocabulary.blank)
        self._time = columns >= begin
        self._text = columns < vocabulary.eot
        self._before_time = columns < begin
        self._late_start = columns > begin + MAX_INITIAL_TIMESTAMP_INDEX
        long = torch.long
        self.finished = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.sum_logprob = torch.zeros(capacity, device=device)
        self.tokens = torch.zeros(capacity, steps, dtype=long, device=device)
        self.logprobs = torch.zeros(capacity, steps, device=device)
        self.step = torch.zeros(1, dtype=long, device=device)
        self._last = torch.zeros(capacity, dtype=long, device=device)
        self._before_last = torch.zeros(capacity, dtype=long, device=device)
        self._last_time = torch.zeros(capacity, dtype=long, device=device)
        self.seeds = torch.zeros(capacity, dtype=long, device=device)

    @property
    def buffers(self) -> list[torch.Tensor]:
        return [
            self.finished,
            self.sum_logprob,
            self.tokens,
            self.logprobs,
            self.step,
            self._last,
            self._before_last,
            self._last_time,
        ]

    def seed(self, seeds: list[int]) -> None:
        """The sampling seeds of the next pass's rows (32-bit), one per row."""
        self.seeds[: len(seeds)].copy_(torch.tensor([x & _MASK for x in seeds]))

    def reset(self) -> None:
        for buffer in (self.finished, self.sum_logprob, self.step):
            buffer.zero_()
        for buffer in (self._last, self._before_last, self._last_time):
            buffer.fill_(-1)

    def choose(
        self,
        logits: torch.Tensor,
        rows: int,
        timestamps: bool,
        temperature: float = 0.0,
    ) -> torch.Tensor:
        """Masks `logits` (rows, vocabulary; float32, changed in place), picks one token
        per row and records it; returns the picks (rows,)."""
        eot = self.vocabulary.eot
        first = self.step == 0
        logits.masked_fill_(self._never | (first & self._blank), -torch.inf)
        if timestamps:
            self._timestamp_rules(logits, rows, first)
        else:
            logits.masked_fill_(self._time, -torch.inf)  # text only
        logprobs = logits.log_softmax(-1)
        if temperature > 0:
            noise = uniform_noise(self.seeds[:rows], self.step, self._columns)
            chosen = (logits / temperature - torch.log(-torch.log(noise))).argmax(-1)
        else:
            chosen = logits.argmax(-1)
        finished = self.finished[:rows]
        chosen = torch.where(finished, eot, chosen)
        picked = logprobs.gather(1, chosen[:, None]).squeeze(1)
        self.sum_logprob[:rows].add_(torch.where(finished, 0.0, picked))  # the end counts too
        self.tokens[:rows].index_copy_(1, self.step, chosen[:, None])
        self.logprobs[:rows].index_copy_(1, self.step, picked[:, None])
        finished |= chosen == eot
        self._before_last[:rows].copy_(self._last[:rows])
        self._last[:rows].copy_(chosen)
        is_time = chosen >= self.vocabulary.timestamp_begin
        self._last_time[:rows].copy_(torch.where(is_time, chosen, self._last_time[:rows]))
        self.step.add_(1)
        return chosen

    def _timestamp_rules(self, logits: torch.Tensor, rows: int, first: torch.Tensor) -> None:
        begin = self.vocabulary.timestamp_begin
        last, last_time = self._last[:rows], self._last_time[:rows]
        last_was_time = last >= begin
        # A single token counts as the end of a pair (the first step has none).
        before_was_time = (self._before_last[:rows] >= begin) | (self.step < 2)
        closed = (last_was_time & before_was_time)[:, None]
        opened = (last_was_time & ~before_was_time)[:, None]
        floor = torch.where(opened[:, 0], last_time, last_time + 1)[:, None]
        backwards = (last_time >= 0)[:, None] & self._time & (self._columns < floor)
        forbidden = (closed & self._time) | (opened & self._text) | backwards
        forbidden |= first & (self._before_time | self._late_start)
        logits.masked_fill_(forbidden, -torch.inf)
        logprobs = logits.log_softmax(-1)
        time_mass = logprobs[:, begin:].logsumexp(-1)
        best_text = logprobs[:, :begin].max(-1).values
        logits.masked_fill_((time_mass > best_text)[:, None] & self._before_time, -torch.inf)
