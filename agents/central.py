"""The centralized learner process: the upper-bound baseline, on the same byte-counted comms.

It registers with the env host like an agent (member id `LEARNER`, -3) and joins the peer mesh.
Acting agents (`Agent(feed_learner=True)`) send it every step of every episode as experience
chunks; it trains one world model and one actor-critic on all of them (the paper's centralized
training) and broadcasts the acting networks (`ParamsMsg`: RSSM posterior path and actor) every
``share.params_every`` training rounds. Its link is not byte-budgeted (a parameter message is
far larger than any burst), but every byte it sends is in its ledger, ``ledger-learner.jsonl``.

Schedule: the agents' episodes end together (lockstep), so one training round per episode of
the team is one round per ``n_agents`` finished agent-episodes received. After each team
episode it has learned from, the learner tells the env host (a `MetricsMsg` on the control
channel), and the host starts the next training episode only then (or after a timeout): a round
takes longer than an episode of acting, and without the wait the agents would play several
episodes per round, a different schedule from the decentralized methods'. An agent-episode is
recognised by its chunks' header ``step`` (the agent's env-step count when it sent them,
equal for all chunks of one episode).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.checkpoints import load_latest, save_checkpoint
from agents.learner import DreamerLearner
from agents.process import LOOP_TICK_S, MemberProcess, StopFlag, run_member
from agents.wire import EpisodeJoiner, WireError, acting_params, experience_from_msg
from comms.budget import Budget
from comms.messages import (
    LEARNER,
    ExperienceMsg,
    MetricsMsg,
    ParamsMsg,
    SpecMsg,
    StopMsg,
)
from dwm_net.config import Config
from dwm_net.learning.types import EnvSpec
from dwm_net.runlog import JsonlWriter, TensorBoardLog, now, write_atomic
from dwm_net.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)

_STATE = "learner-state.npz"
_REJECT_LOG_S = 10.0  # at most one warning about rejected messages this often


@dataclass(frozen=True)
class LearnerArgs:
    cfg: Config
    connect: str
    run_dir: Path
    bind: str = "tcp://127.0.0.1:*"
    advertise: str | None = None
    metrics: str | None = None
    keys: Path | None = None
    register_timeout_s: float = 120.0
    host_timeout_s: float = 900.0


def learner_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "learner"


class LearnerProcess(MemberProcess):
    def __init__(self, args: LearnerArgs, stop: StopFlag) -> None:
        super().__init__(LEARNER, "learner", args.cfg, args.run_dir, stop)
        self.args = args
        self.learner: DreamerLearner | None = None
        self.rng = np.random.default_rng(derive_seed(args.cfg.run.seed, 0, "learner"))
        self.episodes: set[tuple[int, int]] = set()  # (agent, its env-step count) seen
        self.rounds = 0
        self.steps_received = 0
        self.rejected: dict[str, int] = {}
        self._reject_logged = -_REJECT_LOG_S  # monotonic time of the last warning
        self._reject_unlogged = 0  # rejections since then
        self.n_agents = 0
        self._last_ckpt = 0  # steps_received at the last checkpoint

    def start(self) -> None:
        a = self.args
        spec = self.open(connect=a.connect, bind=a.bind, advertise=a.advertise, keys=a.keys,
                         metrics=a.metrics, budget=Budget(None, None),
                         ledger_name="ledger-learner.jsonl", register_timeout_s=a.register_timeout_s)
        self.init_learning(EnvSpec(obs_dim=spec.obs_dim, n_actions=spec.n_actions, n_agents=spec.n_agents,
                                   episode_limit=spec.episode_limit))
        load_latest(learner_dir(a.run_dir), self._load)
        self.connect_peers(spec)
        self.continue_link_totals(a.run_dir / "learner.jsonl")
        self.records = JsonlWriter(a.run_dir / "learner.jsonl")
        self.tb = TensorBoardLog(a.run_dir / "tb" / "learner")

    def init_learning(self, spec: EnvSpec) -> None:
        """The learner and the episode joiner for the env host's spec (tests call it without
        `start`'s network)."""
        cfg = self.cfg
        self.n_agents, self.spec = spec.n_agents, spec
        seed_everything(derive_seed(cfg.run.seed, 0, "learner-process"))
        self.learner = learner = DreamerLearner(cfg, spec, init_seed=derive_seed(cfg.run.seed, 0, "init"))
        # Room for every agent's partial episode twice over (a restarted agent's stale one
        # included) before forged sender ids start evicting.
        self.joiner = EpisodeJoiner(lambda chunk: learner.replay.add_chunk(**chunk),
                                    max_steps=min(spec.episode_limit, cfg.train.capacity),
                                    max_senders=2 * spec.n_agents)

    def run(self) -> int:
        assert self.control is not None and self.transport is not None
        last_heard = time.monotonic()
        while not self.stop.set:
            messages = self.control.poll(LOOP_TICK_S)
            if messages:
                last_heard = time.monotonic()
            for msg in messages:
                if isinstance(msg, StopMsg):
                    return self._finish()
                if isinstance(msg, SpecMsg):
                    self.connect_peers(msg)
            self.transport.pump()
            self._receive()
            self._train_if_due()
            if self.publish_due():
                self.publish(self.snapshot(), self.steps_received)
            if time.monotonic() - last_heard > self.args.host_timeout_s:
                log.error("learner: no message from the env host for %.0f s; stopping",
                          self.args.host_timeout_s)
                self._finish()
                return 1
        return self._finish()

    def _receive(self) -> None:
        assert self.transport is not None and self.learner is not None
        for msg in self.transport.poll(0):
            if not isinstance(msg, ExperienceMsg):
                continue
            try:
                chunk = experience_from_msg(msg, self.spec)
                self.joiner.add(msg, chunk)
            except WireError as e:
                self._reject(msg, e.reason, e)
                continue
            except ValueError as e:  # the replay's own shape/range check
                self._reject(msg, "buffer", e)
                continue
            self.steps_received += len(chunk["action"])
            self.episodes.add((msg.sender, msg.step))

    def _reject(self, msg: ExperienceMsg, reason: str, error: Exception) -> None:
        """Count a message that does not fit, under ``rejected/<reason>``, and warn (rate-limited:
        a misbehaving peer must not flood the log)."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._reject_unlogged += 1
        t = time.monotonic()
        if t - self._reject_logged >= _REJECT_LOG_S:
            log.warning("learner: rejected experience from agent %d (%s; %d rejected since the last "
                        "warning, totals %s)", msg.sender, error, self._reject_unlogged, self.rejected)
            self._reject_logged, self._reject_unlogged = t, 0

    def _train_if_due(self) -> None:
        learner, t = self.learner, self.cfg.train
        assert learner is not None and self.records is not None
        team_episodes = len(self.episodes) // max(1, self.n_agents)
        if team_episodes // t.train_every <= self.rounds:
            return
        if len(learner.replay) < max(t.prefill, t.seq_len):
            self.rounds = team_episodes // t.train_every  # the schedule starts after prefill
            self._report(team_episodes)
            return
        t0 = time.perf_counter()
        metrics, _ = learner.train_round(self.rng, use_shared=False, use_received=False,
                                         should_stop=self.busy_stop)
        self.rounds += 1
        if self.rounds % self.cfg.share.params_every == 0:
            self.broadcast()
        record = {"time": now(), "round": self.rounds, "steps_received": self.steps_received,
                  "train_s": time.perf_counter() - t0, **self.link_metrics(), **metrics}
        self.records.write(record)
        if self.tb is not None:
            self.tb.scalars(record, self.steps_received)
        every = self.cfg.run.checkpoint_every
        if every and self.steps_received // every > self._last_ckpt // every:
            self.checkpoint()
        self._report(team_episodes)

    def _report(self, team_episodes: int) -> None:
        """Tell the env host a team episode has been learned from: it holds the next episode
        until then, which keeps the paper's schedule (one round per episode) even though a
        round takes longer than an episode of acting."""
        assert self.control is not None
        self.control.send(MetricsMsg(sender=LEARNER, seq=self.rounds, step=self.steps_received,
                                     values={"team_episodes": team_episodes, "rounds": self.rounds}))

    def broadcast(self) -> None:
        learner, transport = self.learner, self.transport
        assert learner is not None and transport is not None
        msg = ParamsMsg(sender=LEARNER, seq=self.rounds, step=self.steps_received,
                        arrays=acting_params(learner.wm, learner.ac.acting_actor, learner.ac_updates),
                        update=self.rounds)
        transport.send(msg, score=1.0)
        transport.pump()

    def snapshot(self) -> dict[str, Any]:
        assert self.learner is not None
        return {"env_steps": self.steps_received, "episodes": len(self.episodes),
                "wm_updates": self.learner.wm_updates, "ac_updates": self.learner.ac_updates,
                "replay_size": len(self.learner.replay), **self.learner.last_metrics,
                **self.link_metrics(), **{f"rejected/{k}": v for k, v in self.rejected.items()},
                "joiner_evicted": self.joiner.evicted}

    # --- checkpoints ------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        assert self.learner is not None
        self.joiner.flush()  # an episode held in part goes into the saved replay
        save_checkpoint(learner_dir(self.args.run_dir), self.steps_received, self._save)
        self._last_ckpt = self.steps_received

    def _save(self, folder: Path) -> None:
        assert self.learner is not None
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "learner.pt", lambda fh: torch.save(self.learner.state_dict(), fh))
        self.learner.replay.save(folder / "replay.npz")
        episodes = np.array(sorted(self.episodes), np.int64).reshape(-1, 2)
        write_atomic(folder / _STATE, lambda fh: np.savez(fh, episodes=episodes,
                                                     counters=np.array([self.rounds, self.steps_received])))

    def _load(self, folder: Path) -> None:
        assert self.learner is not None
        self.learner.load_state_dict(torch.load(folder / "learner.pt", weights_only=True))
        self.learner.replay.load(folder / "replay.npz")
        with np.load(folder / _STATE) as state:
            self.episodes = {(int(a), int(b)) for a, b in state["episodes"]}
            self.rounds, self.steps_received = (int(x) for x in state["counters"])
        self._last_ckpt = self.steps_received
        log.info("learner: resumed from %s (%d rounds)", folder, self.rounds)

    def _finish(self) -> int:
        if self.steps_received > 0:
            self.checkpoint()
        if self.learner is not None:
            self.publish(self.snapshot(), self.steps_received, force=True)
        return 0


def run_learner(args: LearnerArgs) -> int:
    """The learner process's main."""
    return run_member(lambda stop: LearnerProcess(args, stop))


__all__ = ["LearnerArgs", "LearnerProcess", "learner_dir", "run_learner"]
