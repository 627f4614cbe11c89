"""Bandwidth-aware selection of what to share (paper section 4.2): sliding-window loss
statistics, the deterministic Gaussian gate of Gerstgrasser et al. (2023), and the world
model's composite score (max of per-loss normalized losses). numpy/math only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np


class SlidingStats:
    """Mean and population std of the last `window` pushed values, O(1) amortized per push.

    Running mean and sum of squared deviations are updated by sliding Welford steps (more stable
    than sum / sum-of-squares when the mean is large next to the spread); every `window` pushes
    they are recomputed exactly from the ring buffer, so rounding drift cannot accumulate.
    Empty stats report mean 0 and std 0.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._values = np.zeros(window)  # (K,) ring buffer
        self._next = 0
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean
        self._since_exact = 0

    @property
    def count(self) -> int:
        return self._count

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / self._count) if self._count else 0.0

    def push(self, x: float) -> None:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"SlidingStats values must be finite, got {x}")
        if self._count < self.window:
            self._count += 1
            delta = x - self._mean
            self._mean += delta / self._count
            self._m2 += delta * (x - self._mean)
        else:
            old = float(self._values[self._next])
            mean = self._mean + (x - old) / self._count
            self._m2 += (x - old) * (x - mean + old - self._mean)
            self._mean = mean
        self._m2 = max(self._m2, 0.0)
        self._values[self._next] = x
        self._next = (self._next + 1) % self.window
        self._since_exact += 1
        if self._since_exact >= self.window:
            values = self._values[: self._count]
            self._mean = float(values.mean())
            self._m2 = float(((values - self._mean) ** 2).sum())
            self._since_exact = 0


# Values a window needs before its spread is trusted. With two, the third score is divided by the
# spread of two numbers (measured: 107 and 591 standard deviations), passes any gate, and then
# inflates sigma for the window's next K decisions (the 2026-11-28 review: items 100-1,500
# shared at 1.8% against ~3% later, beta = 0.01).
WARMUP = 10


def _warm(stats: SlidingStats) -> bool:
    return stats.count >= min(WARMUP, stats.window)


def gate_threshold(beta: float) -> float:
    """`c = Phi^-1(1 - beta)`: a N(mu, sigma^2) score exceeds `mu + c*sigma` with probability
    beta. beta = 0 -> +inf (share nothing), beta = 1 -> -inf (share everything)."""
    if not (isinstance(beta, (int, float)) and 0.0 <= beta <= 1.0):
        raise ValueError(f"beta must be a number in [0, 1], got {beta!r}")
    if beta == 0.0:
        return math.inf
    if beta == 1.0:
        return -math.inf
    return NormalDist().inv_cdf(1.0 - beta)


class GaussianGate:
    """Share a sample when its score >= mu + c*sigma of the previous `window` scores.

    Exactly a beta fraction is shared for Gaussian scores; for others the fraction is the
    distribution's own tail mass above mu + c*sigma (see tests/test_selection.py). Each score is
    judged against the stats before it is pushed. Special cases: beta = 1 always shares and
    beta = 0 never does; before `WARMUP` scores are seen nothing else is shared; on a
    degenerate window (sigma = 0) a score must be strictly above mu when c > 0, so a constant
    stream does not flood the link.
    """

    def __init__(self, beta: float, window: int) -> None:
        self.beta = beta
        self.c = gate_threshold(beta)
        self.stats = SlidingStats(window)
        self.decisions = 0
        self.shared = 0

    @property
    def fraction(self) -> float:
        """Fraction of decisions so far that shared (0 before any)."""
        return self.shared / self.decisions if self.decisions else 0.0

    def zscore(self, score: float) -> float:
        """How many window standard deviations ``score`` lies above the window's mean (0 before
        there are `WARMUP` scores with a spread): the unit of the composite experience score, so
        both kinds of item can share one priority queue. Call it before `decide`, which pushes
        the score."""
        sigma = self.stats.std
        return 0.0 if not _warm(self.stats) or sigma == 0.0 else (score - self.stats.mean) / sigma

    def decide(self, score: float) -> bool:
        mu, sigma = self.stats.mean, self.stats.std
        if self.beta in (0.0, 1.0):
            share = self.beta == 1.0
        elif not _warm(self.stats):
            share = False
        elif sigma == 0.0:
            share = score > mu if self.c > 0 else score >= mu
        else:
            share = score >= mu + self.c * sigma
        self.stats.push(score)
        self.decisions += 1
        self.shared += share
        return share


class CompositeScorer:
    """World-model selection score (paper 4.2): each loss normalized by its own sliding window,
    `L' = (L - mu_L) / sigma_L` (0 while sigma_L = 0 or the window holds fewer than `WARMUP`
    losses), then the max over `keys`, so an abnormally high loss of any one head selects the
    sample."""

    def __init__(self, keys: Sequence[str] = ("avail", "term", "reward", "kl"), window: int = 1500) -> None:
        if not keys:
            raise ValueError("CompositeScorer needs at least one loss key")
        self.keys = tuple(keys)
        self.stats = {key: SlidingStats(window) for key in self.keys}

    def score(self, losses: Mapping[str, float]) -> float:
        """Max normalized loss, judged against the stats before this sample is pushed. Keys of
        `losses` beyond `keys` (e.g. decoder losses) are ignored."""
        missing = [key for key in self.keys if key not in losses]
        if missing:
            raise ValueError(f"losses lack {', '.join(missing)} (scorer keys: {', '.join(self.keys)})")
        normalized = []
        for key in self.keys:
            stats, value = self.stats[key], float(losses[key])
            sigma = stats.std
            normalized.append((value - stats.mean) / sigma if sigma > 0.0 and _warm(stats) else 0.0)
            stats.push(value)
        return max(normalized)
