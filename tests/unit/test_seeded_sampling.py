"""The torch engine's sampled passes (the temperature fallback) draw each window's noise
from its own seed: a row picks the same tokens whatever rows it is batched with, and the
picks follow the softmax at that temperature."""

from __future__ import annotations

import torch

from app.engines.torch_selection import Selection, Vocabulary, uniform_noise

VOCAB = Vocabulary(
    eot=10, no_speech=11, timestamp_begin=12, no_timestamps=13, blank=(), suppress=()
)
SIZE = 20


def sample(rows: list[tuple[int, torch.Tensor]], steps: int = 6) -> torch.Tensor:
    """Each row (seed, logits over the vocabulary) sampled for `steps` steps, text only."""
    selection = Selection(VOCAB, SIZE, len(rows), steps, torch.device("cpu"))
    selection.reset()
    selection.seed([seed for seed, _ in rows])
    logits = torch.stack([row for _, row in rows])
    for _ in range(steps):
        selection.choose(logits.clone(), len(rows), timestamps=False, temperature=1.0)
    return selection.tokens[: len(rows)].clone()


def test_a_row_samples_the_same_tokens_alone_and_in_any_batch() -> None:
    torch.manual_seed(1)
    mine = torch.randn(SIZE)
    mine[VOCAB.eot] = -10.0  # long enough to compare several steps
    alone = sample([(1234, mine)])[0]
    others = [(seed, torch.randn(SIZE)) for seed in (7, 99, 5)]
    assert torch.equal(sample([*others[:2], (1234, mine), others[2]])[2], alone)
    assert torch.equal(sample([(1234, mine), *others])[0], alone)
    assert not torch.equal(sample([(4321, mine)])[0], alone)  # another seed, other draws


def test_the_draws_follow_the_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0] + [-30.0] * (SIZE - 4))
    picks = sample([(seed, logits) for seed in range(4000)], steps=1)[:, 0]
    counts = torch.bincount(picks, minlength=SIZE)[:4].float() / len(picks)
    expected = logits[:4].softmax(-1)
    assert torch.allclose(counts, expected, atol=0.03), (counts, expected)


def test_noise_is_uniform_and_depends_on_seed_step_and_column_only() -> None:
    columns = torch.arange(1000)[None]
    a = uniform_noise(torch.tensor([5, 6]), torch.tensor([3]), columns)
    assert torch.equal(a[0], uniform_noise(torch.tensor([5]), torch.tensor([3]), columns)[0])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], uniform_noise(torch.tensor([5]), torch.tensor([4]), columns)[0])
    assert float(a.min()) > 0.0 and float(a.max()) < 1.0
    assert abs(float(a.mean()) - 0.5) < 0.03
