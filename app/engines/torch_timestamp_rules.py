"""Whisper's rules for timestamp tokens, applied to a batch's logits one step at a time,
every row on its own (the rules of openai-whisper's decoder, as tensors):

- `<|notimestamps|>` never; the first token is a timestamp of at most 1 s;
- timestamps come in pairs: after a closing pair only text (or the end) may follow, after
  one timestamp that follows text only another timestamp (or the end);
- timestamps never go back in time;
- when the timestamps together are likelier than any single text token, a timestamp.
"""

from __future__ import annotations

import torch

MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1 s, faster-whisper's and openai-whisper's default


class TimestampRules:
    def __init__(
        self,
        batch: int,
        vocabulary_size: int,
        timestamp_begin: int,
        eot: int,
        no_timestamps: int,
        device: torch.device,
    ) -> None:
        self._begin, self._no_timestamps = timestamp_begin, no_timestamps
        columns = torch.arange(vocabulary_size, device=device)
        self._columns = columns[None]
        self._is_time = (columns >= timestamp_begin)[None]
        self._is_text = (columns < eot)[None]
        self._before_times = (columns < timestamp_begin)[None]
        self._last = torch.full((batch,), -1, dtype=torch.long, device=device)
        self._before_last = self._last.clone()
        self._last_time = self._last.clone()
        self._step = 0

    def apply(self, logits: torch.Tensor) -> None:
        """Masks, in place, the tokens the rules forbid at this step."""
        logits[:, self._no_timestamps] = -torch.inf
        begin = self._begin
        if self._step == 0:
            logits[:, :begin] = -torch.inf
            logits[:, begin + MAX_INITIAL_TIMESTAMP_INDEX + 1 :] = -torch.inf
        else:
            last_was_time = self._last >= begin
            before_was_time = (
                self._before_last >= begin
                if self._step >= 2
                else torch.ones_like(last_was_time)  # a single token counts as a pair's end
            )
            closed = last_was_time & before_was_time
            opened = last_was_time & ~before_was_time
            floor = torch.where(opened, self._last_time, self._last_time + 1)
            backwards = (
                (self._last_time >= 0)[:, None] & self._is_time & (self._columns < floor[:, None])
            )
            forbidden = (closed[:, None] & self._is_time) | (opened[:, None] & self._is_text)
            logits.masked_fill_(forbidden | backwards, -torch.inf)
        logprobs = logits.float().log_softmax(-1)
        time_mass = logprobs[:, begin:].logsumexp(-1)
        best_text = logprobs[:, :begin].max(-1).values
        logits.masked_fill_((time_mass > best_text)[:, None] & self._before_times, -torch.inf)

    def chose(self, tokens: torch.Tensor) -> None:
        self._before_last, self._last = self._last, tokens
        self._last_time = torch.where(tokens >= self._begin, tokens, self._last_time)
        self._step += 1
