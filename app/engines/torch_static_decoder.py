"""Whisper's decoder over preallocated caches, each one-token step replayed as a CUDA graph.

transformers' decoder runs a few hundred small kernels per token, each launched from
Python (32 layers for large-v3): on a GPU the host, not the GPU, sets the pace, and in a
server every other thread holding the GIL delays it further. Here the key/value caches are
fixed tensors (self-attention: every position up to the model's 448, masked past the
current one; cross-attention: computed once from the encoder states), so one step has
fixed shapes and addresses and is captured once per batch size as a CUDA graph: a step is
then one launch. The same arithmetic runs eagerly on a CPU (and in the tests, where it is
checked against transformers' decoder).

Weights are the transformers model's own modules (`WhisperForConditionalGeneration`);
nothing is copied.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class StaticDecoder:
    def __init__(self, model: Any, use_graphs: bool | None = None) -> None:
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
        graphs_ok = self._device.type == "cuda"
        self._use_graphs = graphs_ok if use_graphs is None else (use_graphs and graphs_ok)
        self._capacity = 0
        self._source_len = 0
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
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
    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """Logits (batch, vocabulary), float32, of one new token per row at `position`
        (the same for every row), after `prefill` and the steps before it."""
        batch = tokens.shape[0]
        self._position.fill_(position)
        if not self._use_graphs:
            self._tokens[:batch] = tokens
            return self._step_rows(batch)
        size = min(_bucket(batch), self._capacity)
        self._tokens[:batch] = tokens
        captured = self._graphs.get(size)
        if captured is None:
            try:
                captured = self._capture(size)
            except RuntimeError as exc:  # decoding goes on, slower, and says why
                log.warning("CUDA graph capture failed, decoding without graphs: %s", exc)
                self._use_graphs = False
                self._position.fill_(position)
                return self._step_rows(batch)
        graph, logits = captured
        graph.replay()
        return logits[:batch]

    def _capture(self, size: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        # Warm-up and capture write position 447's cache slot with whatever the buffers
        # hold; the real step at that position (if any) overwrites it first.
        saved = self._position.clone()
        self._position.fill_(self.max_positions - 1)
        side = torch.cuda.Stream(device=self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step_rows(size)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits = self._step_rows(size)
        self._position.copy_(saved)
        self._graphs[size] = (graph, logits)
        return graph, logits

    def _step_rows(self, rows: int) -> torch.Tensor:
        """One step for the first `rows` rows of the token buffer: fixed shapes, no host
        synchronisation, so it can be captured."""
        x = self._embed_tokens(self._tokens[:rows, None])
        x = x + self._embed_positions.index_select(0, self._position)
        visible = (self._positions <= self._position)[None, None, None, :]
        for i, layer in enumerate(self._layers):
            attention = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = self._split(attention.q_proj(h) * self._scaling)
            keys, values = self._self_k[i, :rows], self._self_v[i, :rows]
            keys.index_copy_(2, self._position, self._split(attention.k_proj(h)))
            values.index_copy_(2, self._position, self._split(attention.v_proj(h)))
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, scale=1.0)
            x = x + attention.out_proj(self._merge(out))
            x = self._cross_attention(i, x, rows)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        return self._proj_out(self._final_norm(x)[:, 0]).float()

    def _cross_attention(self, i: int, x: torch.Tensor, rows: int) -> torch.Tensor:
        layer = self._layers[i]
        attention = layer.encoder_attn
        q = self._split(attention.q_proj(layer.encoder_attn_layer_norm(x)) * self._scaling)
        keys, values = self._cross_k[i, :rows], self._cross_v[i, :rows]
        out = F.scaled_dot_product_attention(q, keys, values, scale=1.0)
        return x + attention.out_proj(self._merge(out))


def _bucket(batch: int) -> int:
    return next((b for b in _BUCKETS if b >= batch), batch)
