"""Categorical sampling by CDF inversion: the right frequencies, never a zero-probability class."""

from __future__ import annotations

import torch

from dwm_net.learning.sampling import sample_index


def test_frequencies_match_the_probabilities() -> None:
    torch.manual_seed(0)
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.0, 0.3]]).repeat(100_000, 1, 1)  # (N, 2, 4)
    index = sample_index(probs)
    assert index.shape == (100_000, 2) and index.dtype == torch.int64
    for row in range(2):
        freq = torch.bincount(index[:, row], minlength=4).double() / 100_000
        # 4 standard errors of a binomial proportion at n = 1e5 is at most 0.0064
        assert torch.allclose(freq, probs[0, row].double(), atol=0.0064)


def test_zero_probability_classes_are_never_drawn() -> None:
    torch.manual_seed(1)
    probs = torch.zeros(50_000, 7)
    probs[:, 0], probs[:, 3] = 1e-7, 1 - 1e-7  # the first and the trailing classes are edge cases
    index = sample_index(probs)
    assert set(index.unique().tolist()) <= {0, 3}
    one = torch.zeros(1000, 5)
    one[:, 4] = 1.0
    assert (sample_index(one) == 4).all()  # the last class alone
    first = torch.zeros(1000, 5)
    first[:, 0] = 1.0
    assert (sample_index(first) == 0).all()  # u = 0 must not pick a zero-mass class before it
