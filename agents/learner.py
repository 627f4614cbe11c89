"""The learning half of an agent: networks, optimizers, replay buffers and one training round.

One `DreamerLearner` per decentralized agent; under `centralized` one is shared by every agent
(the paper's shared world model and actor-critic trained on all agents' experience).

Training round (paper section 5: "each iteration consists of `wm_epochs` epochs for the world
model and `ac_epochs` for the actor-critic"):

1. `wm_epochs` world-model steps, each on a fresh `sample_mixed(own, shared)` batch. The shared
   fraction is the shared buffer's share of all stored steps, so a batch is a uniform sample of
   the union of both buffers: the paper's SharedReplayBuffer (Algorithm 1, line 10), while the
   `own` flags keep the decoders on own rows only (line 9, routed inside `WorldModel.loss`).
   One step instead of Algorithm 1's two (own batch, then shared batch): the RSSM and
   predictors see the same data either way, but the decoders' batch is the own rows only,
   B * (1 - shared fraction) sequences, so their gradient is noisier the more is received
   (e.g. 8 of 40 rows at beta = 1 on 2s3z); the paper's own-buffer step would give them B.
2. `ac_epochs` actor-critic updates, each on trajectories imagined from the posterior states of
   a fresh own batch (every (b, t) state starts one rollout), concatenated with the received
   rollouts not used before (oldest first, at most as many as own ones: `ImaginationBuffer.take`).
   Algorithm 2 pools every agent's rollouts in one SharedImaginationBuffer and samples it
   uniformly, so peers' part of a batch grows with what they share (about beta per peer). Using
   each received rollout once keeps that proportion while the own part stays fresh, on-policy
   imagination, as in Independent Training. (Drawing a fixed N from a store of 4N received ones
   made peers half of every batch at any beta > 0, each rollout used ~100 times over ~100-400
   rounds of a peer's drifting model: measured, 2026-11-28 review.)
   Each own rollout's critic loss is taken before the update trains on it (`ScoredRollouts`):
   the selection score of paper 4.2, which a critic fitted to the rollout would understate.

Shape notes: B batch, T time, N = B*T rollouts, H horizon, R deter size, C categoricals,
K classes, A actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from dwm_net.config import Config
from dwm_net.learning.actor_critic import ActorCritic, self_imitate_real
from dwm_net.learning.replay import EpisodeReplay, ImaginationBuffer, WindowPriority, sample_mixed
from dwm_net.learning.rollouts import to_trajectory
from dwm_net.learning.types import EnvSpec, Latent, SeqBatch, Trajectory
from dwm_net.learning.world_model import TensorBatch, WorldModel, WorldModelLearner

# Received rollouts kept, in own imagination batches (B*T rollouts each): enough to mix a few
# rounds' worth of peers' rollouts without holding a replay-sized store of latents.
IMAGINATION_BATCHES = 4


@dataclass(frozen=True)
class ScoredRollouts:
    """Own imagined rollouts (H+1, N, ...) and each one's critic loss (N,) float64, taken before
    the actor-critic update that trained on them: the rollout selection score (paper 4.2)."""

    traj: Trajectory
    critic_loss: np.ndarray

    def cat(self, other: ScoredRollouts) -> ScoredRollouts:
        return ScoredRollouts(self.traj.cat(other.traj),
                              np.concatenate([self.critic_loss, other.critic_loss]))


class Learner(Protocol):
    """What an acting agent needs from whoever trains its networks."""

    wm: WorldModel
    ac: ActorCritic
    replay: EpisodeReplay  # own transitions
    shared: EpisodeReplay  # peers' experience chunks
    imagined: ImaginationBuffer  # peers' rollouts
    wm_updates: int
    ac_updates: int
    last_metrics: dict[str, float]  # of the last training round

    def ready(self) -> bool: ...

    def train_round(self, rng: np.random.Generator, *, use_shared: bool, use_received: bool,
                    should_stop: Callable[[], bool] | None = None
                    ) -> tuple[dict[str, float], ScoredRollouts | None]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class DreamerLearner:
    """World model + actor-critic with own replay, shared-experience replay and received
    rollouts. ``init_seed`` seeds the network initialisation only (the paper starts every agent
    from the same phi_0, theta_0); it leaves the global torch RNG as it found it."""

    def __init__(self, cfg: Config, spec: EnvSpec, *, init_seed: int) -> None:
        self.cfg, self.spec = cfg, spec
        m, t = cfg.model, cfg.train
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.wm = WorldModel(spec, m)
            self.ac = ActorCritic(spec, self.wm.feat_size, m, t)
        self.wm_learner = WorldModelLearner(self.wm, t)
        self.replay = EpisodeReplay(t.capacity, spec.obs_dim, spec.n_actions, gamma=t.gamma)
        # How own windows are drawn, the same for world-model batches and imagination starts.
        self._priority = WindowPriority(t.reward_priority, t.priority_lead, t.priority_power)
        self.shared = EpisodeReplay(t.capacity, spec.obs_dim, spec.n_actions, gamma=t.gamma)
        self.imagined = ImaginationBuffer(IMAGINATION_BATCHES * t.batch_size * t.seq_len, t.horizon,
                                          m.deter, m.n_categoricals, m.n_classes, spec.n_actions)
        self.wm_updates = 0
        self.ac_updates = 0
        self.last_metrics: dict[str, float] = {}

    def ready(self) -> bool:
        """Enough own data to sample one sequence batch."""
        return len(self.replay) >= self.cfg.train.seq_len

    def train_world_model(self, rng: np.random.Generator, *, use_shared: bool) -> dict[str, float]:
        t = self.cfg.train
        stored = len(self.replay) + len(self.shared)
        fraction = len(self.shared) / stored if use_shared else 0.0
        batch = sample_mixed(self.replay, self.shared, t.batch_size, t.seq_len, rng, fraction,
                             self._priority)
        self.wm_updates += 1
        return self.wm_learner.update(batch)

    @torch.no_grad()
    def own_starts(self, rng: np.random.Generator) -> tuple[TensorBatch, Latent]:
        """A fresh own batch (B, T, ...) and its posterior states: where imagination starts."""
        t = self.cfg.train
        sample = self.replay.sample(t.batch_size, t.seq_len, rng, priority=self._priority)
        batch = TensorBatch.from_numpy(SeqBatch(**sample), self.wm.device)
        post, _, _ = self.wm.observe(batch.obs, batch.action, batch.first)
        return batch, post

    @torch.no_grad()
    def imagine(self, rng: np.random.Generator, starts: tuple[TensorBatch, Latent] | None = None
                ) -> Trajectory:
        """Rollouts (H+1, N, ...) from every posterior state of ``starts`` (default: a fresh own
        batch, `own_starts`)."""
        t = self.cfg.train
        _, post = starts if starts is not None else self.own_starts(rng)
        start = post.map(lambda x: x.flatten(0, 1))  # (B, T, ...) -> (N, ...)
        return self.wm.imagine(start, self.ac.policy, t.horizon, t.gamma,
                               sample_avail=t.imagine_avail == "sample")

    def received(self, n: int) -> Trajectory | None:
        """Up to ``n`` received rollouts (H+1, n, ...) not used before, or None."""
        if self.imagined.fresh == 0:
            return None
        return to_trajectory(self.imagined.take(n), self.cfg.model.n_classes, self.wm.device)

    def train_actor_critic(self, rng: np.random.Generator, *,
                           use_received: bool) -> tuple[dict[str, float], ScoredRollouts]:
        """One update; returns its metrics and the *own* imagined part (what may be shared),
        scored before the update. With ``train.self_imitation``, a self-imitation step on the
        same own batch follows."""
        starts = self.own_starts(rng)
        own = self.imagine(rng, starts)
        scored = ScoredRollouts(own, self.ac.critic_losses(own))
        peers = self.received(own.action.shape[1]) if use_received else None
        received = 0.0 if peers is None else float(peers.action.shape[1])
        # Rebinding frees the received rollouts once they are copied into the batch (a full
        # `paper` update holds several copies of (H+1, N, F) latents at its peak).
        batch = own if peers is None else own.cat(peers)
        peers = None
        metrics = self.ac.update(batch)
        if self.cfg.train.self_imitation > 0.0:
            metrics.update({f"sil_{k}": v for k, v in self.self_imitate(*starts).items()})
        self.ac_updates += 1
        return {**metrics, "received_rollouts": received}, scored

    def self_imitate(self, batch: TensorBatch, post: Latent) -> dict[str, float]:
        """`ActorCritic.self_imitate` on real sequences and their posterior states (B, T, ...)."""
        return self_imitate_real(self.ac, self.wm, batch, post)

    def train_round(self, rng: np.random.Generator, *, use_shared: bool, use_received: bool,
                    should_stop: Callable[[], bool] | None = None
                    ) -> tuple[dict[str, float], ScoredRollouts | None]:
        """`wm_epochs` world-model then `ac_epochs` actor-critic updates; metrics are the last of
        each, prefixed ``wm/`` and ``ac/``; the trajectory holds every own imagination batch of
        the round (Algorithm 2 offers every generated rollout to the gate; with only the last
        batch, `paper`'s 4 batches a round would share about beta / 4 of them).

        Actor-critic warm-up: until the world model has had ``train.ac_warmup`` updates, the
        round trains the world model only and returns no trajectory (nothing to share).

        ``should_stop`` is asked before every update: a process told to stop ends the round
        there, between whole updates, so what it then saves is consistent."""
        t = self.cfg.train
        metrics: dict[str, float] = {}
        own: ScoredRollouts | None = None
        stop = should_stop or (lambda: False)
        for _ in range(t.wm_epochs):
            if stop():
                self.last_metrics = metrics
                return metrics, own
            wm_metrics = self.train_world_model(rng, use_shared=use_shared)
            metrics.update({f"wm/{k}": v for k, v in wm_metrics.items()})
        if self.wm_updates < t.ac_warmup:
            self.last_metrics = metrics
            return metrics, own
        for _ in range(t.ac_epochs):
            if stop():
                break
            ac_metrics, batch = self.train_actor_critic(rng, use_received=use_received)
            own = batch if own is None else own.cat(batch)
            metrics.update({f"ac/{k}": v for k, v in ac_metrics.items()})
        self.last_metrics = metrics
        return metrics, own

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers and update counters (plain tensors and numbers: loadable with
        ``torch.load(weights_only=True)``). Replays are saved separately (npz)."""
        return {"wm": self.wm_learner.state_dict(), "ac": self.ac.state_dict(),
                "wm_updates": self.wm_updates, "ac_updates": self.ac_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wm_learner.load_state_dict(state["wm"])
        self.ac.load_state_dict(state["ac"])
        self.wm_updates, self.ac_updates = int(state["wm_updates"]), int(state["ac_updates"])


__all__ = ["IMAGINATION_BATCHES", "DreamerLearner", "Learner", "ScoredRollouts"]
