"""Whisper's decoder over preallocated caches, each one-token step replayed as a CUDA graph.

transformers' decoder runs a few hundred small kernels per token, each launched from
Python (32 layers for large-v3): on a GPU the host, not the GPU, sets the pace, and in a
server every other thread holding the GIL delays it further. Here the key/value caches are
fixed tensors (self-attention: up to the model's 448 positions, masked past the current
one; cross-attention: computed once from the encoder states), so one step has fixed shapes
and addresses and is captured as a CUDA graph once per row bucket and attended length
(`replay`): a step is then one launch. The same arithmetic runs eagerly on a CPU (and in
the tests, where it is checked against transformers' decoder).

Weights are the transformers model's own modules (`WhisperForConditionalGeneration`);
nothing is copied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_VISIBLE = (64, 128, 256)  # cache positions a step attends over (else all: 448 in Whisper)


class StaticDecoder:
    def __init__(self, model: Any) -> None:
        decoder = model.model.decoder
        self._layers = list(decoder.layers)
        self._embed_tokens = decoder.embed_tokens
        self._embed_positions = decoder.embed_positions.weight
        self._final_norm = decoder.layer_norm
        self._proj_out = model.proj_out
        attention = self._layers[0].self_attn
        self._heads = int(attention.num_heads)
        self._head_dim = int(attention.head_dim)
        self._scaling = float(attention.scaling)
        self.max_positions = int(model.config.max_target_positions)
        self._device = self._embed_positions.device
        self._dtype = self._embed_positions.dtype
        self._use_graphs = self._device.type == "cuda"  # off for good if a capture fails
        self._capacity = 0
        self._source_len = 0
        self._graphs: dict[tuple[Hashable, int, int], Any] = {}
        self._positions = torch.arange(self.max_positions, device=self._device)
        self._position = torch.zeros(1, dtype=torch.long, device=self._device)

    # --- caches ---------------------------------------------------------------------------
    def _reserve(self, batch: int, source_len: int) -> None:
        """Caches for `batch` rows (rounded up to a bucket) of `source_len` encoder frames."""
        if batch <= self._capacity and source_len == self._source_len:
            return
        capacity = _bucket(max(batch, self._capacity if source_len == self._source_len else 0))
        self._graphs.clear()
        self._self_k = self._self_v = self._cross_k = self._cross_v = torch.empty(0)
        layers, heads, dim = len(self._layers), self._heads, self._head_dim
        shape = (layers, capacity, heads, self.max_positions, dim)
        cross = (layers, capacity, heads, source_len, dim)
        make = {"device": self._device, "dtype": self._dtype}
        self._self_k, self._self_v = torch.zeros(shape, **make), torch.zeros(shape, **make)
        self._cross_k, self._cross_v = torch.zeros(cross, **make), torch.zeros(cross, **make)
        self._tokens = torch.zeros(capacity, dtype=torch.long, device=self._device)
        self._capacity, self._source_len = capacity, source_len

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, width) -> (batch, heads, time, head_dim)."""
        return x.view(x.shape[0], x.shape[1], self._heads, self._head_dim).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self._heads * self._head_dim)

    # --- the prefix -----------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Run the prefix `ids` (batch, length) over `states` (batch, frames, width), filling
        the caches; returns the hidden states of every prefix position (after the final
        norm), for the caller's logits."""
        batch, length = ids.shape
        self._reserve(batch, states.shape[1])
        x = self._embed_tokens(ids) + self._embed_positions[:length]
        for i, layer in enumerate(self._layers):
            cross = layer.encoder_attn
            self._cross_k[i, :batch] = self._split(cross.k_proj(states))
            self._cross_v[i, :batch] = self._split(cross.v_proj(states))
            attention = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = self._split(attention.q_proj(h) * self._scaling)
            k, v = self._split(attention.k_proj(h)), self._split(attention.v_proj(h))
            self._self_k[i, :batch, :, :length] = k
            self._self_v[i, :batch, :, :length] = v
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
            x = x + attention.out_proj(self._merge(out))
            x = self._cross_attention(i, x, batch)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        return self._final_norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._proj_out(hidden).float()

    # --- one token ------------------------------------------------------------------------
    @property
    def tokens(self) -> torch.Tensor:
        """The token of each row that the next step feeds (a fixed buffer)."""
        return self._tokens

    @property
    def position(self) -> torch.Tensor:
        """The position the next step feeds, the same for every row (a fixed buffer)."""
        return self._position

    @property
    def capacity(self) -> int:
        return self._capacity

    def forget_graphs(self) -> None:
        self._graphs.clear()

    def visible_length(self, position: int) -> int:
        """How many cache positions a step at `position` attends over (a bucket: graphs
        are captured per bucket, and a step early in a window reads no more of the
        448-position cache than it needs)."""
        return next((n for n in _VISIBLE if position < n < self.max_positions), self.max_positions)

    def step_logits(self, rows: int, visible: int) -> torch.Tensor:
        """One step for the first `rows` rows of `tokens` at `position`: logits (rows,
        vocabulary), float32. Fixed shapes, no host synchronisation: capturable."""
        position = self._position
        x = self._embed_tokens(self._tokens[:rows, None])
        x = x + self._embed_positions.index_select(0, position)
        mask = (self._positions[:visible] <= position)[None, None, None, :]
        for i, layer in enumerate(self._layers):
            attention = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = self._split(attention.q_proj(h) * self._scaling)
            keys = self._self_k[i, :rows, :, :visible]
            values = self._self_v[i, :rows, :, :visible]
            keys.index_copy_(2, position, self._split(attention.k_proj(h)))
            values.index_copy_(2, position, self._split(attention.v_proj(h)))
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=1.0)
            x = x + attention.out_proj(self._merge(out))
            x = self._cross_attention(i, x, rows)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        return self._proj_out(self._final_norm(x)[:, 0]).float()

    @torch.inference_mode()
    def replay(
        self,
        key: Hashable,
        rows: int,
        visible: int,
        body: Callable[[int, int], torch.Tensor | None],
        keep: Sequence[torch.Tensor] = (),
    ) -> torch.Tensor | None:
        """`body(rows, visible)`, work on fixed buffers only (`step_logits` and what the
        caller does with its logits), for the first `rows` rows. On a GPU it is captured
        once per (key, row bucket, visible) as a CUDA graph and replayed: one launch. The
        warm-up before a capture runs `body` for real, so the buffers in `keep` (the
        caller's state, `tokens`, `position`) are put back after it; the cache slot it
        writes is written again by the real step. Returns what `body` returns (a graph's
        output: valid until the next replay), for the first `rows` rows."""
        if not self._use_graphs:
            return body(rows, visible)
        size = min(_bucket(rows), self._capacity)
        captured = self._graphs.get((key, size, visible))
        if captured is None:
            try:
                captured = self._capture(body, size, visible, [*keep, self._tokens, self._position])
            except RuntimeError as exc:  # decoding goes on, slower, and says why
                log.warning("CUDA graph capture failed, decoding without graphs: %s", exc)
                self._use_graphs = False
                return body(rows, visible)
            self._graphs[(key, size, visible)] = captured
        graph, out = captured
        graph.replay()
        return None if out is None else out[:rows]

    def _capture(
        self,
        body: Callable[[int, int], torch.Tensor | None],
        size: int,
        visible: int,
        keep: list[torch.Tensor],
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor | None]:
        saved = [t.clone() for t in keep]

        def put_back() -> None:
            for tensor, value in zip(keep, saved, strict=True):
                tensor.copy_(value)

        side = torch.cuda.Stream(device=self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(2):  # each run from the same state (and the same position)
                body(size, visible)
                put_back()
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = body(size, visible)
        put_back()
        return graph, out

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """Logits (batch, vocabulary), float32, of one new token per row at `position`
        (the same for every row), after `prefill` and the steps before it."""
        batch = tokens.shape[0]
        self._position.fill_(position)
        self._tokens[:batch] = tokens
        logits = self.replay("logits", batch, self.visible_length(position), self.step_logits)
        assert logits is not None
        return logits

    def _cross_attention(self, i: int, x: torch.Tensor, rows: int) -> torch.Tensor:
        layer = self._layers[i]
        attention = layer.encoder_attn
        q = self._split(attention.q_proj(layer.encoder_attn_layer_norm(x)) * self._scaling)
        keys, values = self._cross_k[i, :rows], self._cross_v[i, :rows]
        out = F.scaled_dot_product_attention(q, keys, values, scale=1.0)
        return x + attention.out_proj(self._merge(out))


def _bucket(batch: int) -> int:
    """Rows a graph is captured for: powers of two up to 16, then multiples of 16 (a batch
    of 116 runs as 128 rows at most 12 too many)."""
    if batch <= 16:
        return 1 << max(0, batch - 1).bit_length()
    return -(-batch // 16) * 16
