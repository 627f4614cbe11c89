"""One decentralized agent: act -> record -> train -> select -> share -> receive.

The loop that drives it (in-process: `agents.local.run_local`; over ZeroMQ: the agent process)
calls, per episode::

    agent.reset_episode()
    for each env step:  a = agent.act(obs, avail);  agent.record(obs, a, reward, term, avail, first)
    agent.end_episode();  agent.train_round();  agent.share();  (transport.pump());  agent.receive()

Acting is decentralized: the agent sees only its own observation and availability and carries
its own RSSM state (``carry``) between steps. What it shares (paper 4.2):

- ``experience``/``both``: the episode just finished, cut into chunks of ``share.chunk_len``
  steps (the last one overlapping the one before, so every chunk is full length and none spans
  an episode boundary; when both pass the gate, which at the paper's beta <= 0.1 is rare, the
  overlapping steps travel twice), each scored by the world model's per-head losses -> `CompositeScorer`
  -> `GaussianGate`; a chunk that passes goes out as an `ExperienceMsg`. Only new experience is
  offered ("whenever new experiences ... are collected"), so nothing is offered twice.
- ``rollout``/``both``: the own imagined rollouts of the last round's actor-critic updates, each
  scored by its critic loss before the update trained on it -> `GaussianGate`; one `RolloutMsg`
  per rollout that passes. Received rollouts are never forwarded.

The score travels with every item into the transport's priority queue (highest score first
under a byte budget). ``independent`` shares nothing. ``centralized`` in one process shares a
learner object; as its own process (``feed_learner``) the agent trains nothing, sends every
chunk of every episode (no gate) to the learner process and acts with the parameters the
learner sends back (`ParamsMsg`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.learner import DreamerLearner, Learner, ScoredRollouts
from agents.wire import (
    WireError,
    experience_from_msg,
    experience_msg,
    load_acting_params,
    rollout_from_msg,
    rollout_msg,
)
from comms.messages import ExperienceMsg, Message, ParamsMsg, RolloutMsg
from comms.transport import Transport
from dwm_net.config import Config
from dwm_net.learning.rollouts import from_trajectory
from dwm_net.learning.selection import CompositeScorer, GaussianGate, SlidingStats
from dwm_net.learning.types import EnvSpec, Latent, SeqBatch, Trajectory
from dwm_net.learning.world_model import SCORE_KEYS
from dwm_net.runlog import write_atomic as _atomic
from dwm_net.seeding import derive_seed

EXPERIENCE_METHODS = ("experience", "both")
ROLLOUT_METHODS = ("rollout", "both")

# Checkpoint files: networks and optimizers (torch), replays (npz), counters/RNG/gates (JSON).
_LEARNER_FILE, _REPLAY_FILE, _SHARED_FILE = "learner.pt", "replay.npz", "shared.npz"
_STATE_FILE = "agent.json"


@dataclass
class Carry:
    """Acting state between env steps: the posterior (1, ...) and the action taken in it."""

    latent: Latent
    prev_action: torch.Tensor  # (1,) int64
    first: bool  # the next `act` starts an episode (resets the RSSM state)


class Agent:
    """A decentralized learner with its own networks, buffers, gates and RNG.

    ``learner``: pass one `DreamerLearner` to several agents for ``centralized`` (shared networks
    and replay; each agent still carries its own latent state). ``init_seed`` seeds network
    initialisation (default ``seed``); give every agent the same one to start them all from the
    same parameters, as the paper does.
    """

    def __init__(self, cfg: Config, agent_id: int, spec: EnvSpec, transport: Transport | None, *,
                 seed: int, init_seed: int | None = None, learner: Learner | None = None,
                 feed_learner: bool = False) -> None:
        self.cfg, self.agent_id, self.spec, self.transport = cfg, agent_id, spec, transport
        self.method = cfg.share.method
        self.feed_learner = feed_learner  # centralized, as its own process: see the module doc
        self.params_update = -1  # the learner update of the acting parameters (feed_learner)
        self.learner_actor_updates = 0  # the central learner's actor updates behind them
        self.rng = np.random.default_rng(seed)
        # Exploration noise draws from its own stream, so turning it on leaves replay sampling
        # and gating draws as they were.
        self.explore_rng = np.random.default_rng(derive_seed(seed, agent_id, "explore"))
        self._deviation: int | None = None  # the exploratory action of the last step, if any
        if learner is None:
            learner = DreamerLearner(cfg, spec, init_seed=seed if init_seed is None else init_seed)
        self.learner: Learner = learner
        self.scorer = CompositeScorer(SCORE_KEYS, cfg.share.window)
        self.experience_gate = GaussianGate(cfg.share.beta, cfg.share.window)
        self.rollout_gate = GaussianGate(cfg.share.beta, cfg.share.window)
        self.counters: Counter[str] = Counter()
        self._steps: list[tuple[np.ndarray, int, float, bool, np.ndarray, bool]] = []
        self._new_episode: dict[str, np.ndarray] | None = None  # finished, not yet offered
        self._new_rollouts: ScoredRollouts | None = None  # own imagination of the last round
        self._seq = 0
        # Under an unlimited budget nothing should be dropped, but one round can offer more
        # messages than the bounded send queue holds (rollout sharing at beta = 1: B*T per
        # update). So a burst pumps every half queue. Under a finite budget the queue must see
        # the whole burst before it drains, so that it keeps the best-scored items: no pumping.
        self._pump_every = (max(1, cfg.comms.queue_size // 2) if cfg.comms.budget == "unlimited"
                            else 0)
        self._unpumped = 0
        self.carry = self._initial_carry()

    # --- acting ---------------------------------------------------------------------------------

    def _initial_carry(self) -> Carry:
        return Carry(self.learner.wm.initial(1), torch.zeros(1, dtype=torch.int64), True)

    def reset_episode(self) -> None:
        self.carry = self._initial_carry()
        self._deviation = None
        self._steps.clear()

    def act(self, obs: np.ndarray, avail: np.ndarray, greedy: bool = False) -> int:
        """Action for own obs (D,) and avail (A,) bool: a posterior step, then the masked policy."""
        c = self.carry
        obs_t = torch.from_numpy(np.array(obs, np.float32)).to(self.learner.wm.device)[None]
        first = torch.tensor([c.first], device=obs_t.device)
        latent = self.learner.wm.act_step(c.latent, c.prev_action, obs_t, first)
        avail_t = torch.from_numpy(np.array(avail, bool)).to(obs_t.device)[None]
        t = self.cfg.train
        noisy = not greedy and t.noisy_episode(self.counters["episodes"])
        # Not before the actor's first update: argmax of an untrained actor is one fixed action.
        plain_greedy = (not greedy and not noisy and t.plain_policy == "greedy"
                        and max(self.learner.ac_updates, self.learner_actor_updates) > 0)
        action, _ = self.learner.ac.acting_policy(latent.feat(), avail_t, greedy or plain_greedy)
        if noisy:
            action = torch.full_like(action, self._explore(int(action[0]), np.asarray(avail, bool)))
        self.carry = Carry(latent, action, False)
        return int(action[0])

    def _explore(self, action: int, avail: np.ndarray) -> int:
        """``train.explore_eps`` / ``explore_repeat`` noise on the policy's ``action``."""
        t, rng, dev = self.cfg.train, self.explore_rng, self._deviation
        if dev is not None and avail[dev] and rng.random() < t.explore_repeat:
            return dev
        self._deviation = None
        if rng.random() < t.explore_eps:
            choices = np.flatnonzero(avail)
            if choices.size:
                self._deviation = int(rng.choice(choices))
                return self._deviation
        return action

    def record(self, obs: np.ndarray, action: int, reward: float, term: bool, avail: np.ndarray,
               first: bool) -> None:
        """One own step: obs (D,), avail (A,); ``term`` only for a real termination (not the
        episode limit). Kept until `end_episode`, so an episode lands contiguously in replay even
        when a centralized learner's replay is fed by several agents."""
        self._steps.append((np.asarray(obs, np.float32), int(action), float(reward), bool(term),
                            np.asarray(avail, bool), bool(first)))
        self.counters["env_steps"] += 1

    def end_episode(self) -> None:
        """Store the episode in replay; it becomes the new experience `share` offers."""
        if not self._steps:
            return
        for step in self._steps:
            self.learner.replay.add(*step)
        obs, action, reward, term, avail, _ = zip(*self._steps)
        self._new_episode = {"obs": np.stack(obs), "action": np.array(action, np.int64),
                             "reward": np.array(reward, np.float32), "term": np.array(term),
                             "avail": np.stack(avail)}
        self._steps.clear()
        self.counters["episodes"] += 1

    # --- training -------------------------------------------------------------------------------

    def train_due(self) -> bool:
        """The schedule: every ``train_every`` episodes, once ``prefill`` env steps are in."""
        t = self.cfg.train
        if self.feed_learner:
            return False
        return (self.counters["episodes"] > 0 and self.counters["episodes"] % t.train_every == 0
                and self.counters["env_steps"] >= t.prefill and self.learner.ready())

    def train_round(self, should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """One training round if due (else {}): losses by name, ``wm/...`` and ``ac/...``.
        ``should_stop`` may end it early, between whole updates (see `DreamerLearner`)."""
        if not self.train_due():
            return {}
        metrics, own = self.learner.train_round(self.rng, use_shared=self.method in EXPERIENCE_METHODS,
                                                use_received=self.method in ROLLOUT_METHODS,
                                                should_stop=should_stop)
        self._new_rollouts = own
        self.counters["train_rounds"] += 1
        return metrics

    # --- selection and sharing ------------------------------------------------------------------

    def share(self) -> None:
        """Offer what is new since the last call to the gates, and what passes to the transport."""
        episode, rollouts = self._new_episode, self._new_rollouts
        self._new_episode = self._new_rollouts = None
        if self.transport is None:
            return
        if self.feed_learner:
            if episode is not None:
                self._feed_learner(episode)
            return
        if self.method in EXPERIENCE_METHODS and episode is not None:
            self._share_experience(episode)
        if self.method in ROLLOUT_METHODS and rollouts is not None:
            self._share_rollouts(rollouts)

    def _chunks(self, episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """(B, T, ...) full-length chunks of one episode; T = min(chunk_len, episode length)."""
        length = len(episode["action"])
        t = min(self.cfg.share.chunk_len, length)
        starts = sorted({*range(0, length - t + 1, t), length - t})
        idx = np.array(starts)[:, None] + np.arange(t)  # (B, T)
        return {k: v[idx] for k, v in episode.items()}

    def _share_experience(self, episode: dict[str, np.ndarray]) -> None:
        chunks = self._chunks(episode)
        b, t = chunks["action"].shape
        first = np.zeros((b, t), bool)
        first[:, 0] = True
        batch = SeqBatch(obs=chunks["obs"], action=chunks["action"], reward=chunks["reward"],
                         term=chunks["term"].astype(np.float32), avail=chunks["avail"], first=first,
                         own=np.ones(b, bool))
        scores = self.learner.wm.scores(batch)  # {key: (B,)}
        for i in range(b):
            score = self.scorer.score({k: float(v[i]) for k, v in scores.items()})
            if self.experience_gate.decide(score):
                msg = experience_msg({k: v[i] for k, v in chunks.items()}, sender=self.agent_id,
                                     seq=self._next_seq(), step=self.counters["env_steps"], score=score,
                                     float16=self.cfg.comms.float16)
                self._send(msg, score)

    def _feed_learner(self, episode: dict[str, np.ndarray]) -> None:
        """Every step of the episode to the learner, in disjoint chunks (the last may be short)
        that say where they lie in it, so the learner joins them back (`wire.EpisodeJoiner`)."""
        length, t = len(episode["action"]), self.cfg.share.chunk_len
        for start in range(0, length, t):
            chunk = {k: v[start:start + t] for k, v in episode.items()}
            self._send(experience_msg(chunk, sender=self.agent_id, seq=self._next_seq(),
                                      step=self.counters["env_steps"], score=0.0,
                                      float16=self.cfg.comms.float16, t0=start,
                                      ends=start + t >= length), 0.0)

    def _share_rollouts(self, rollouts: ScoredRollouts) -> None:
        traj, scores = rollouts.traj, rollouts.critic_loss  # (H+1, N, ...), (N,)
        # The send queue ranks by priority: the critic loss as a z-score under the gate's window,
        # the unit of the experience score, so under `both` neither kind outranks the other by
        # scale alone (raw critic losses and z-scores were compared before).
        gate = self.rollout_gate
        priority = {}
        for i, s in enumerate(scores):
            z = gate.zscore(float(s))
            if gate.decide(float(s)):
                priority[i] = z
        if not priority:
            return
        chosen = list(priority)
        index = torch.as_tensor(chosen)
        subset = Trajectory(**{k: v[:, index] for k, v in vars(traj).items()})
        for i, rollout in zip(chosen, from_trajectory(subset)):
            msg = rollout_msg(rollout, sender=self.agent_id, seq=self._next_seq(),
                              step=self.counters["env_steps"], score=float(scores[i]),
                              float16=self.cfg.comms.float16)
            self._send(msg, priority[i])

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _send(self, msg: Message, score: float) -> None:
        assert self.transport is not None
        queued = self.transport.send(msg, score=score)
        self.counters[f"shared/{msg.KIND}" if queued else f"send_refused/{msg.KIND}"] += 1
        self._unpumped += 1
        if self._pump_every and self._unpumped >= self._pump_every:
            self.transport.pump()
            self._unpumped = 0

    # --- receiving ------------------------------------------------------------------------------

    def receive(self) -> int:
        """Take everything the transport has; store what this method uses. Returns how many
        items were stored. Bad items are counted under ``rejected/<reason>`` and skipped."""
        if self.transport is None:
            return 0
        stored = 0
        handlers = {ExperienceMsg: self._on_experience, RolloutMsg: self._on_rollout,
                    ParamsMsg: self._on_params}
        for msg in self.transport.poll(0):
            handler = handlers.get(type(msg))
            if handler is None:
                self.counters[f"ignored/{msg.KIND}"] += 1
                continue
            try:
                if handler(msg):
                    self.counters[f"received/{msg.KIND}"] += 1
                    stored += 1
                else:
                    self.counters[f"ignored/{msg.KIND}"] += 1
            except WireError as exc:
                self.counters[f"rejected/{exc.reason}"] += 1
            except ValueError:  # a buffer's own shape/range check
                self.counters["rejected/buffer"] += 1
        return stored

    def _on_experience(self, msg: ExperienceMsg) -> bool:
        if self.method not in EXPERIENCE_METHODS:
            return False
        self.learner.shared.add_chunk(**experience_from_msg(msg, self.spec))
        return True

    def _on_params(self, msg: ParamsMsg) -> bool:
        if not self.feed_learner or msg.update <= self.params_update:
            return False  # not ours to use, or stale
        self.learner_actor_updates = load_acting_params(msg, self.learner.wm, self.learner.ac.acting_actor)
        self.params_update = msg.update
        return True

    def _on_rollout(self, msg: RolloutMsg) -> bool:
        if self.method not in ROLLOUT_METHODS:
            return False
        self.learner.imagined.add(
            rollout_from_msg(msg, self.spec, self.cfg.model, self.cfg.train.horizon))
        return True

    # --- reporting and checkpoints --------------------------------------------------------------

    def metrics(self) -> dict[str, float | int]:
        """Counters, buffer sizes, gate fractions and the last round's losses (flat)."""
        learner = self.learner
        return {**self.counters, "wm_updates": learner.wm_updates, "ac_updates": learner.ac_updates,
                "replay_size": len(learner.replay), "shared_size": len(learner.shared),
                "imagined_size": len(learner.imagined),
                "gate/experience_fraction": self.experience_gate.fraction,
                "gate/rollout_fraction": self.rollout_gate.fraction, **learner.last_metrics}

    def save(self, directory: str | Path) -> None:
        """Models, optimizers, replays, counters, RNG and gate statistics; each file atomic.

        Received rollouts (a short FIFO of peers' imagination) are not saved. The global torch
        RNG is process state, not the agent's, and is not saved either.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        _atomic(d / _LEARNER_FILE, lambda fh: torch.save(self.learner.state_dict(), fh))
        self.learner.replay.save(d / _REPLAY_FILE)
        self.learner.shared.save(d / _SHARED_FILE)
        state = {"agent_id": self.agent_id, "counters": dict(self.counters), "seq": self._seq,
                 "params_update": self.params_update,
                 "rng": self.rng.bit_generator.state,
                 "explore_rng": self.explore_rng.bit_generator.state,
                 "scorer": {k: _stats_state(s) for k, s in self.scorer.stats.items()},
                 "gates": {name: {"decisions": g.decisions, "shared": g.shared,
                                  "stats": _stats_state(g.stats)} for name, g in self._gates().items()}}
        _atomic(d / _STATE_FILE, lambda fh: fh.write(json.dumps(state).encode()))

    def load(self, directory: str | Path) -> None:
        """Restore `save` output into this agent (built with the same config and spec)."""
        d = Path(directory)
        self.learner.load_state_dict(torch.load(d / _LEARNER_FILE, weights_only=True))
        self.learner.replay.load(d / _REPLAY_FILE)
        self.learner.shared.load(d / _SHARED_FILE)
        state = json.loads((d / _STATE_FILE).read_text())
        self.counters = Counter(state["counters"])
        self._seq = int(state["seq"])
        self.params_update = int(state.get("params_update", -1))
        self.rng.bit_generator.state = state["rng"]
        if "explore_rng" in state:  # absent in checkpoints from before exploration noise
            self.explore_rng.bit_generator.state = state["explore_rng"]
        for key, stats in self.scorer.stats.items():
            _load_stats(stats, state["scorer"][key])
        for name, gate in self._gates().items():
            gate.decisions, gate.shared = state["gates"][name]["decisions"], state["gates"][name]["shared"]
            _load_stats(gate.stats, state["gates"][name]["stats"])
        self.reset_episode()

    def _gates(self) -> dict[str, GaussianGate]:
        return {"experience": self.experience_gate, "rollout": self.rollout_gate}


def _stats_state(stats: SlidingStats) -> dict[str, Any]:
    """A `SlidingStats` as JSON data (its few scalars and the window's ring buffer)."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in vars(stats).items()}


def _load_stats(stats: SlidingStats, state: dict[str, Any]) -> None:
    for key, value in state.items():
        setattr(stats, key, np.asarray(value, np.float64) if isinstance(value, list) else value)


__all__ = ["EXPERIENCE_METHODS", "ROLLOUT_METHODS", "Agent", "Carry"]
