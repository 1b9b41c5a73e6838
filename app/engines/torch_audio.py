"""Whisper's log-mel input and DTW word times, computed with PyTorch on the model's device.

Features follow Whisper's recipe as faster-whisper's FeatureExtractor computes it (its mel
filter bank is used): a centred 400-point STFT with a periodic Hann window every 10 ms,
power, mel filters, log10 floored 8 below the window's maximum, scaled to about [-1, 1].
Word times come from the decoder's cross-attention on the model's alignment heads (the
attention is recomputed from the layers' own projections, so any attention kernel can run
the forward pass): normalised per head, median-filtered along time, averaged, and aligned
to the tokens by dynamic time warping, as openai-whisper and faster-whisper do.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from faster_whisper.transcribe import merge_punctuations

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
WINDOW_SAMPLES = 30 * SAMPLE_RATE
FRAMES = WINDOW_SAMPLES // HOP  # 3000 mel frames per window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP // 2  # encoder frames: 50 per second
_MEDIAN_WIDTH = 7
# faster-whisper's defaults: punctuation joins the word before or after it.
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001
_SENTENCE_ENDS = ".。!！?？"  # noqa: RUF001


_MEL_CHUNK = 32  # windows per STFT call: bounds the complex spectrum's memory (~150 MB)


def log_mel(samples: list[np.ndarray], filters: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """(windows, n_mels, 3000) features for up to 30 s of audio each, on `filters`' device,
    and how many frames of each hold audio. As faster-whisper computes them (so both
    engines see the same input): 10 ms of silence appended, each window floored against its
    own maximum, frames past the audio set to 0.

    All windows go through one STFT, zero-padded to 30 s: a window's last frame reaches at
    most 40 samples past its appended silence, where the reflection of a window computed
    alone holds zeros too, so each window's frames are its own (the padding only adds
    frames past its end, which are left out of its maximum and zeroed)."""
    device = filters.device
    lengths = [min(len(audio), WINDOW_SAMPLES) for audio in samples]
    frames = [min(n // HOP + 1, FRAMES) for n in lengths]
    # Each window is copied straight into its row on the device (a host-side batch would
    # cost one more copy of every sample: measured slower on the H100).
    signal = torch.zeros((len(samples), WINDOW_SAMPLES + HOP), device=device)
    for row, audio, n in zip(signal, samples, lengths, strict=True):
        row[:n].copy_(torch.from_numpy(np.asarray(audio[:n], dtype=np.float32)))
    window = torch.hann_window(N_FFT, device=device)
    counts = torch.tensor(frames, device=device)
    chunks = []
    for first in range(0, len(samples), _MEL_CHUNK):
        part = signal[first : first + _MEL_CHUNK]
        stft = torch.stft(part, N_FFT, HOP, window=window, return_complex=True)
        mel = (filters @ (stft[..., :FRAMES].abs() ** 2)).clamp(min=1e-10).log10()
        inside = torch.arange(FRAMES, device=device) < counts[first : first + _MEL_CHUNK, None]
        peak = mel.masked_fill(~inside[:, None], -torch.inf).amax(dim=(1, 2), keepdim=True)
        mel = (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
        chunks.append(mel.masked_fill(~inside[:, None], 0.0))
    return torch.cat(chunks), frames


@dataclass(frozen=True)
class TimedWord:
    start_s: float
    end_s: float
    text: str
    probability: float
    token_count: int  # text tokens the word is made of (punctuation merged in included)


def word_times(
    model: Any,
    states: torch.Tensor,
    sot_sequence: list[int],
    tokens: list[int],
    token_probs: list[float],
    heads: list[tuple[int, int]],
    split_words: Any,
    eot: int,
    audio_frames: int,
) -> list[TimedWord]:
    """Words of one window with window-relative times. `states`: the window's encoder
    output (1, 1500, d); `audio_frames`: its mel frames holding audio (not padding);
    `split_words(tokens) -> (words, word_tokens)`: the tokenizer's word splitter."""
    if not tokens:
        return []
    ids = [*sot_sequence, *tokens, eot]
    weights = _alignment_attention(model, states, ids, heads)  # (heads, ids, 1500)
    weights = weights[:, :, : max(audio_frames // 2, 1)]
    weights = (weights - weights.mean(-2, keepdim=True)) / weights.std(-2, keepdim=True)
    weights = _median_filter(weights, _MEDIAN_WIDTH)
    # Row r is the decoder at input position r, which predicts token r + 1: the rows from
    # the last sot token to the last text token predict the text tokens and the end.
    matrix = weights.mean(0)[len(sot_sequence) - 1 : -1].double().cpu().numpy()
    text_index, time_index = _dtw(-matrix)
    words, word_tokens = split_words([*tokens, eot])
    if len(word_tokens) <= 1:
        return []
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_index), (1, 0), constant_values=1).astype(bool)
    jump_times = time_index[jumps] / FRAMES_PER_SECOND
    starts, ends = jump_times[boundaries[:-1]], jump_times[boundaries[1:]]
    probabilities = [
        float(np.mean(token_probs[a:b])) if b > a else 0.0
        for a, b in itertools.pairwise(boundaries)
    ]
    alignment = [
        {"word": w, "start": float(s), "end": float(e), "probability": p, "tokens": t}
        for w, t, s, e, p in zip(
            words[:-1], word_tokens[:-1], starts, ends, probabilities, strict=True
        )
    ]
    _limit_sentence_marks(alignment)
    merge_punctuations(alignment, _PREPEND, _APPEND)  # "everyone" + "," -> "everyone,"
    return [
        TimedWord(a["start"], a["end"], a["word"], a["probability"], len(a["tokens"]))
        for a in alignment
        if a["word"]
    ]


def _limit_sentence_marks(alignment: list[dict[str, Any]]) -> None:
    """A word next to a sentence end, and the window's first word (a window starts after
    a pause), get at most twice the median word duration (0.7 s at most), as
    faster-whisper trims them: DTW stretches them over the pause."""
    durations = np.array([a["end"] - a["start"] for a in alignment])
    durations = durations[durations.nonzero()]
    if not len(durations):
        return
    longest = 2 * min(0.7, float(np.median(durations)))
    for i in range(1, len(alignment)):
        word, previous = alignment[i], alignment[i - 1]
        if word["end"] - word["start"] > longest:
            if word["word"] in _SENTENCE_ENDS:
                word["end"] = word["start"] + longest
            elif previous["word"] in _SENTENCE_ENDS:
                word["start"] = word["end"] - longest
    first = alignment[0]
    first["start"] = max(first["start"], first["end"] - longest)


@torch.inference_mode()
def _alignment_attention(
    model: Any, states: torch.Tensor, ids: list[int], heads: list[tuple[int, int]]
) -> torch.Tensor:
    layers = model.model.decoder.layers
    wanted = sorted({layer for layer, _ in heads})
    inputs: dict[int, torch.Tensor] = {}

    def keep(layer: int) -> Any:
        def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs[layer] = args[0] if args else kwargs["hidden_states"]

        return hook

    handles = [
        layers[layer].encoder_attn.register_forward_pre_hook(keep(layer), with_kwargs=True)
        for layer in wanted
    ]
    try:
        model.model.decoder(
            input_ids=torch.tensor([ids], device=states.device),
            encoder_hidden_states=states,
            use_cache=False,
        )
    finally:
        for handle in handles:
            handle.remove()
    n_heads = model.config.decoder_attention_heads
    maps = []
    for layer, head in heads:
        attention = layers[layer].encoder_attn
        size = attention.q_proj.out_features // n_heads
        part = slice(head * size, (head + 1) * size)
        query = attention.q_proj(inputs[layer][0]).float()[:, part]
        key = attention.k_proj(states[0]).float()[:, part]
        maps.append((query @ key.T / size**0.5).softmax(-1))
    return torch.stack(maps)


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    rows = x.reshape(-1, 1, x.shape[-1])  # reflect padding wants (batch, channel, time)
    padded = torch.nn.functional.pad(rows, (pad, pad), mode="reflect")[:, 0]
    return padded.unfold(-1, width, 1).median(-1).values.reshape(x.shape)


def _dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through `cost` (tokens x frames): its row and column
    indices, start to end. Cells of one anti-diagonal depend only on the two before it,
    so each diagonal is filled in one vectorised step."""
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    total[0, 0] = 0.0
    move = np.zeros((rows + 1, cols + 1), dtype=np.int8)
    for diagonal in range(2, rows + cols + 1):
        i = np.arange(max(1, diagonal - cols), min(rows, diagonal - 1) + 1)
        j = diagonal - i
        options = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        best = options.argmin(0)
        total[i, j] = cost[i - 1, j - 1] + options[best, np.arange(len(i))]
        move[i, j] = best
    i, j, path = rows, cols, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = move[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    path.reverse()
    array = np.array(path)
    return array[:, 0], array[:, 1]
