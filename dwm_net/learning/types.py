"""Data that crosses the learning core's role boundaries (replay -> world model -> actor-critic).

Shape notes: B batch, T time, H imagination horizon, D obs size, A actions, C categoricals,
K classes, R deterministic (GRU) size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch


@dataclass(frozen=True)
class EnvSpec:
    """What an agent learns about its environment at run time (travels in the `spec` message)."""

    obs_dim: int
    n_actions: int
    n_agents: int
    episode_limit: int


@dataclass(frozen=True)
class SeqBatch:
    """Replayed sequences (numpy). `obs[t]` is seen, then `action[t]` taken, which yields
    `reward[t]` and `term[t]` (1.0 if the episode terminated by that step, not by the limit);
    `avail[t]` is the availability that came with `obs[t]`; `first[t]` marks an episode start
    (the RSSM state resets there); `own[b]` is False for sequences a peer shared (Algorithm 1:
    decoders never train on them); `ret` is used by self-imitation only."""

    obs: np.ndarray  # (B, T, D) float32
    action: np.ndarray  # (B, T) int64
    reward: np.ndarray  # (B, T) float32
    term: np.ndarray  # (B, T) float32
    avail: np.ndarray  # (B, T, A) bool
    first: np.ndarray  # (B, T) bool
    own: np.ndarray  # (B,) bool
    # (B, T) float32 discounted return-to-go of each step where its episode's end is stored,
    # NaN elsewhere (`EpisodeReplay` with a gamma); None when the batch did not come from one.
    ret: np.ndarray | None = None


@dataclass
class Latent:
    """RSSM state: deterministic `deter` (..., R) and stochastic one-hot `stoch` (..., C, K)."""

    deter: torch.Tensor
    stoch: torch.Tensor

    def feat(self) -> torch.Tensor:
        """(..., R + C*K): the input of every head, the actor and the critic."""
        return torch.cat([self.deter, self.stoch.flatten(-2)], dim=-1)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Latent:
        return Latent(fn(self.deter), fn(self.stoch))


@dataclass
class Trajectory:
    """An imagined rollout from H+1 latent states (index 0 = the posterior start state).

    What the paper's Algorithm 2 shares: actions, predicted availability, the actor's logits,
    predicted rewards, latent states (h, z); plus predicted discounts (gamma * P(continue)).
    """

    deter: torch.Tensor  # (H+1, B, R)
    stoch: torch.Tensor  # (H+1, B, C, K) one-hot
    action: torch.Tensor  # (H, B) int64, taken in state t
    logits: torch.Tensor  # (H, B, A) actor logits in state t (masked by `avail`)
    avail: torch.Tensor  # (H, B, A) bool, predicted availability in state t
    reward: torch.Tensor  # (H, B) predicted reward for taking action t
    discount: torch.Tensor  # (H, B) gamma * predicted continue probability after action t

    def feat(self) -> torch.Tensor:
        """(H+1, B, R + C*K)."""
        return torch.cat([self.deter, self.stoch.flatten(-2)], dim=-1)

    @property
    def horizon(self) -> int:
        return self.action.shape[0]

    def detach(self) -> Trajectory:
        return Trajectory(**{f.name: getattr(self, f.name).detach() for f in fields(self)})

    def cat(self, other: Trajectory) -> Trajectory:
        """Concatenate along the batch dimension (own + received rollouts)."""
        return Trajectory(**{f.name: torch.cat([getattr(self, f.name), getattr(other, f.name)],
                                               dim=1) for f in fields(self)})
