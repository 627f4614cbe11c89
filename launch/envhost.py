"""The env host: owns the environment, registers the agents, steps the game in lockstep.

Rendezvous: every agent (and, for ``centralized``, the learner) registers its peer-mesh endpoint
on the control channel (a ROUTER, `comms.rendezvous.RendezvousServer`) and gets the `SpecMsg`.
Then, per env step, agent i gets a `StepMsg` with only its own observation, its available
actions, the team reward and the done flags; the host waits for every agent's `ActionMsg` and
steps. The global state never leaves the host.

A missing agent pauses the episode: the host keeps waiting (saying so every ``warn_after_s``
in the log and in its metrics ``status``) and resends the current step to an agent that
registers again (a restart); after ``agent_timeout_s`` it ends the run with a clear message
instead of waiting forever. When an agent restarts, the others get the new spec so they
reconnect to its new endpoint.

Evaluation: every ``run.eval_every`` training env steps (and at 0 and at the end) the host runs
``run.eval_episodes`` greedy episodes (``StepMsg.greedy``); agents act greedily and record
nothing. Eval steps do not count as training steps.

Records: ``episodes.jsonl`` (one line per train or eval episode; eval win rate and train
returns mirrored to TensorBoard under ``tb/env-host/``) and
``checkpoints/env-host.json`` (counters, after every episode) so ``--resume`` continues where
the run stopped; metrics (sender -1) to the launcher's collector.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from agents.stopflag import StopFlag
from comms.messages import (
    ENV_HOST,
    LEARNER,
    ActionMsg,
    Message,
    MetricsMsg,
    StepMsg,
    StopMsg,
)
from comms.metrics import MetricsPublisher
from comms.rendezvous import RendezvousServer, Stopped
from comms.security import CurveSetup, KeyRing
from dwm_net.config import Config
from dwm_net.envs import make_env
from dwm_net.runlog import (
    JsonlWriter,
    Stopwatch,
    TensorBoardLog,
    now,
    read_jsonl,
    write_json_atomic,
)
from dwm_net.seeding import derive_seed

from .rundir import HOST_STATE_FILE

log = logging.getLogger(__name__)

RECENT = 20  # train episodes in the "recent" win rate and return
LEARNER_WAIT_S = 120.0  # centralized: the longest the next episode waits for the learner


class HostError(RuntimeError):
    """The run cannot go on (an agent gone for good, a bad registration); one line."""


@dataclass(frozen=True)
class HostArgs:
    cfg: Config
    bind: str  # control channel, e.g. tcp://0.0.0.0:5555 (tcp://127.0.0.1:* for any port)
    run_dir: Path
    metrics: str | None = None  # the launcher's metrics collector, if any
    keys: Path | None = None  # CURVE key directory; None: plain tcp
    register_timeout_s: float = 300.0
    agent_timeout_s: float = 900.0  # a silent agent pauses the run this long, then it stops
    warn_after_s: float = 10.0


class EnvHost:
    def __init__(self, args: HostArgs, stop: StopFlag) -> None:
        self.args, self.cfg, self.stop = args, args.cfg, stop
        self.ctx = zmq.Context()
        self.curve: CurveSetup | None = None
        self.server: RendezvousServer | None = None
        self.metrics_pub: MetricsPublisher | None = None
        self.env: Any = None
        self.episodes_log: JsonlWriter | None = None
        self.tb: TensorBoardLog | None = None
        self.counters: Counter[str] = Counter()
        # last_eval: the env step of the last completed evaluation (-1: none yet)
        self.state = {"env_steps": 0, "episodes": 0, "tick": 0, "episode_id": 0, "next_eval": 0,
                      "last_eval": -1}
        self.recent: deque[tuple[bool, float]] = deque(maxlen=RECENT)
        self.last_eval: dict[str, float] = {}
        self.status = "starting"
        self._last_publish = -math.inf
        self.watch = Stopwatch()  # env stepping vs waiting for the agents
        self.learner_reports = 0  # team episodes the centralized learner said it learned from

    @property
    def state_path(self) -> Path:
        return self.args.run_dir / HOST_STATE_FILE

    def start(self) -> None:
        a, cfg = self.args, self.cfg
        if a.keys is not None:
            self.curve = CurveSetup(KeyRing.load(a.keys, "env-host"), self.ctx)
        if self.state_path.exists():
            self._load_state()
        self.env = make_env(cfg.env.scenario, seed=derive_seed(cfg.run.seed, 0, "env"),
                            backend=cfg.env.backend)
        info = self.env.get_env_info()
        self.n_agents = int(info["n_agents"])
        spec_fields = {"scenario": cfg.env.scenario, "obs_dim": int(info["obs_shape"]),
                       "n_actions": int(info["n_actions"]), "episode_limit": int(info["episode_limit"]),
                       "extra": {"seed": cfg.run.seed, "method": cfg.share.method}}
        extra = (LEARNER,) if cfg.share.method == "centralized" else ()
        self.server = RendezvousServer(a.bind, self.n_agents, spec_fields, ctx=self.ctx,
                                       curve=self.curve, extra_members=extra)
        if a.metrics is not None:
            self.metrics_pub = MetricsPublisher(connect=a.metrics, ctx=self.ctx)
        self.episodes_log = JsonlWriter(a.run_dir / "episodes.jsonl")
        self.tb = TensorBoardLog(a.run_dir / "tb" / "env-host")
        self.status = "waiting for agents to register"
        self._publish(force=True)
        log.info("env host: %s, %d agents, control channel %s", cfg.env.scenario, self.n_agents,
                 self.server.bound_endpoint)
        self.server.serve(a.register_timeout_s, should_stop=self.stop)

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_path.read_text())
            # last_eval is newer than the others: a run dir written before it has none
            self.state = {k: int(data[k] if k != "last_eval" else data.get(k, -1)) for k in self.state}
            self.watch.totals = {k: float(v) for k, v in data.get("timers", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HostError(f"cannot resume: {self.state_path} is unreadable ({e}); start a new "
                            f"run directory instead") from None
        # Recent train results for the live view, from the episode log.
        for rec in read_jsonl(self.args.run_dir / "episodes.jsonl"):
            if rec.get("mode") == "train":
                self.recent.append((bool(rec.get("won")), float(rec.get("return", 0.0))))
        log.info("env host: resuming at %d env steps", self.state["env_steps"])

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg.run
        try:
            while self.state["env_steps"] < cfg.steps and not self.stop.set:
                if cfg.eval_every and self.state["env_steps"] >= self.state["next_eval"]:
                    if not self.evaluate():
                        break  # stopped: next_eval stays, so a resume evaluates here again
                    self.state["next_eval"] = (self.state["env_steps"] // cfg.eval_every + 1) * cfg.eval_every
                    self._save_state()
                    continue
                learner_mark = self.learner_reports
                ret, won, length = self.episode(greedy=False)
                if length == 0:
                    break  # stopped mid-episode
                self.state["env_steps"] += length
                self.state["episodes"] += 1
                self.recent.append((won, ret))
                self._log_episode("train", ret, won, length)
                if self.tb is not None:
                    self.tb.scalars({"return": ret, "won": float(won), "length": length},
                                    self.state["env_steps"], "train/")
                self._save_state()
                self._publish()
                self._wait_for_learner(learner_mark)
            if (not self.stop.set and cfg.eval_every
                    and self.state["last_eval"] != self.state["env_steps"] and self.evaluate()):
                self._save_state()
        except HostError as e:
            log.error("env host: %s", e)
            self._stop_members(str(e))
            return 1
        reason = "stopped" if self.stop.set else "done"
        self.status = reason
        self._publish(force=True)
        self._stop_members(reason)
        return 0

    def evaluate(self) -> bool:
        """`eval_episodes` greedy episodes; False if stopped before the last ended. Its episodes
        reach episodes.jsonl only once all have ended, so a cut-short evaluation leaves no
        partial record (the results would read it as an evaluation of fewer episodes)."""
        n = self.cfg.run.eval_episodes
        results, records = [], []
        self.status = "eval"
        for _ in range(n):
            ret, won, length = self.episode(greedy=True)
            if length == 0:
                return False
            results.append((won, ret))
            records.append(self._episode_record("eval", ret, won, length))
        assert self.episodes_log is not None
        for record in records:
            self.episodes_log.write(record)
        self.state["last_eval"] = self.state["env_steps"]
        wins = np.array([w for w, _ in results], float)
        self.last_eval = {"eval_step": self.state["env_steps"], "eval_win_rate": float(wins.mean()),
                          "eval_return": float(np.mean([r for _, r in results])), "eval_episodes": n}
        if self.tb is not None:
            self.tb.scalars({"win_rate": self.last_eval["eval_win_rate"],
                             "return": self.last_eval["eval_return"]}, self.state["env_steps"], "eval/")
        log.info("env host: eval at %d env steps: win rate %.2f, return %.2f",
                 self.state["env_steps"], self.last_eval["eval_win_rate"], self.last_eval["eval_return"])
        self.status = "running"
        self._publish(force=True)
        return True

    def episode(self, greedy: bool) -> tuple[float, bool, int]:
        """One lockstep episode: (team return, battle won, steps); steps 0 if stopped."""
        env, episode_id = self.env, self.state["episode_id"]
        self.state["episode_id"] += 1
        with self.watch("env"):
            env.reset()
        ret, won, t = 0.0, False, 0
        reward, terminated, truncated = 0.0, False, False
        self.status = "eval" if greedy else "running"
        while True:
            with self.watch("env"):
                obs = np.asarray(env.get_obs(), np.float32)  # (N, D)
                avail = np.asarray(env.get_avail_actions(), bool)  # (N, A)
            self.state["tick"] += 1
            steps = [StepMsg(sender=ENV_HOST, seq=self.state["tick"], step=self.state["tick"],
                             obs=obs[i], avail=avail[i], reward=reward, terminated=terminated,
                             truncated=truncated, episode=episode_id, t=t, greedy=greedy)
                     for i in range(self.n_agents)]
            for i, msg in enumerate(steps):
                self._send(i, msg)
            if terminated or truncated:
                return ret, won, t
            with self.watch("wait"):  # for the agents: acting, training, sharing
                actions = self._collect(steps, avail)
            if actions is None:
                return 0.0, False, 0
            with self.watch("env"):
                reward, done, info = env.step(actions)
            reward = float(reward)
            truncated = bool(done and info.get("episode_limit", False))
            terminated = bool(done and not truncated)
            won = bool(info.get("battle_won", False))
            ret, t = ret + reward, t + 1

    def _collect(self, steps: list[StepMsg], avail: np.ndarray) -> list[int] | None:
        """Every agent's action for `steps` (None if stopped); waits out restarts."""
        assert self.server is not None
        tick = steps[0].step
        actions: list[int | None] = [None] * self.n_agents
        started = last_warn = time.monotonic()
        while any(a is None for a in actions):
            if self.stop.set:
                return None
            got = self.server.recv(0.25)
            if self.curve is not None:
                self.curve.poll_monitor()  # count and log rejected handshakes as they happen
            for member in self.server.restarts():
                self._on_restart(member, steps, actions)
            if got is not None:
                member, msg = got
                if isinstance(msg, ActionMsg) and 0 <= member < self.n_agents and msg.step == tick:
                    actions[member] = self._checked_action(member, msg.action, avail[member])
                else:
                    self._on_member_message(member, msg)
            waited = time.monotonic() - started
            if waited >= self.args.warn_after_s and time.monotonic() - last_warn >= self.args.warn_after_s:
                last_warn = time.monotonic()
                missing = [i for i, a in enumerate(actions) if a is None]
                self.status = f"waiting for agent {','.join(map(str, missing))} ({waited:.0f} s)"
                log.warning("env host: %s", self.status)
                self._publish(force=True)
            if waited > self.args.agent_timeout_s:
                missing = [i for i, a in enumerate(actions) if a is None]
                raise HostError(f"agents {missing} sent no action for {waited:.0f} s; the run stops "
                                f"here (resume it with --resume once they can run)")
            self._publish()
        self.status = "running"
        return [int(a) for a in actions]  # type: ignore[arg-type]

    def _wait_for_learner(self, mark: int) -> None:
        """centralized: hold the next episode until the learner has reported a team episode
        learned since `mark` (so it trains once per episode, like every other method), at most
        `LEARNER_WAIT_S`; a learner behind by one episode is not waited for twice."""
        if LEARNER not in (self.server.members if self.server else ()):
            return
        deadline = time.monotonic() + LEARNER_WAIT_S
        while self.learner_reports <= mark and not self.stop.set:
            if time.monotonic() > deadline:
                self.counters["learner_wait_timeouts"] += 1
                log.warning("env host: the learner reported no training for %.0f s; going on "
                            "(%d such timeouts)", LEARNER_WAIT_S, self.counters["learner_wait_timeouts"])
                return
            with self.watch("learner"):
                got = self.server.recv(0.25)  # type: ignore[union-attr]
            if got is not None:
                self._on_member_message(*got)
            self.server.restarts()  # type: ignore[union-attr]  # answered; nothing is pending

    def _on_member_message(self, member: int, msg: Message) -> None:
        """A control message other than the awaited actions."""
        if member == LEARNER and isinstance(msg, MetricsMsg):
            self.learner_reports += 1
        else:
            self.counters["ignored/" + msg.KIND] += 1

    def _checked_action(self, member: int, action: int, avail: np.ndarray) -> int:
        if 0 <= action < len(avail) and avail[action]:
            return action
        # A buggy or hostile agent must not crash the game: count it and play a legal action.
        self.counters["invalid_actions"] += 1
        log.warning("env host: agent %d sent unavailable action %d; playing %d instead "
                    "(%d so far)", member, action, int(np.argmax(avail)), self.counters["invalid_actions"])
        return int(np.argmax(avail))

    def _on_restart(self, member: int, steps: list[StepMsg], actions: list[int | None]) -> None:
        assert self.server is not None
        self.counters["restarts"] += 1
        log.info("env host: member %d registered again (restart)", member)
        spec = self.server.current_spec()
        for other in self.server.members - {member}:
            self.server.send(other, spec)  # reconnect to its new endpoint
        if 0 <= member < self.n_agents and actions[member] is None:
            self._send(member, steps[member])

    def _send(self, member: int, msg: StepMsg) -> None:
        assert self.server is not None
        self.server.send(member, msg)

    def _stop_members(self, reason: str) -> None:
        if self.server is None:
            return
        for member in self.server.members:
            self.server.send(member, StopMsg(sender=ENV_HOST, reason=reason))

    # --- records --------------------------------------------------------------------------------

    def _log_episode(self, mode: str, ret: float, won: bool, length: int) -> None:
        assert self.episodes_log is not None
        self.episodes_log.write(self._episode_record(mode, ret, won, length))

    def _episode_record(self, mode: str, ret: float, won: bool, length: int) -> dict[str, Any]:
        """The episodes.jsonl record of the episode that just ended; a training episode's
        ``noise`` says whether the agents' exploration noise was on in it (by the schedule of
        `TrainConfig.noisy_episode`; only when the run has that noise)."""
        rec = {"time": now(), "mode": mode, "episode": self.state["episode_id"] - 1,
               "env_steps": self.state["env_steps"], "return": ret, "won": won, "length": length}
        train = self.cfg.train
        if mode == "train" and train.explore_eps > 0.0:
            rec["noise"] = train.noisy_episode(self.state["episodes"] - 1)
        return rec

    def _save_state(self) -> None:
        write_json_atomic(self.state_path, {**self.state, "timers": self.watch.totals})

    def metrics(self) -> dict[str, Any]:
        wins = [w for w, _ in self.recent]
        out: dict[str, Any] = {"env_steps": self.state["env_steps"], "episodes": self.state["episodes"],
                               "status": self.status, **self.last_eval, **self.watch.as_metrics(),
                               **{k: v for k, v in self.counters.items()}}
        if self.curve is not None:
            out["rejected/curve"] = sum(self.curve.rejections().values())
        if wins:
            out["train_win_rate"] = float(np.mean(wins))
            out["train_return"] = float(np.mean([r for _, r in self.recent]))
        return out

    def _publish(self, force: bool = False) -> None:
        if self.metrics_pub is None:
            return
        if not force and time.monotonic() - self._last_publish < self.metrics_pub.min_interval_s:
            return
        self._last_publish = time.monotonic()
        self.metrics_pub.publish(ENV_HOST, self.metrics(), step=self.state["env_steps"])
        if force:
            self.metrics_pub.flush(step=self.state["env_steps"])

    def close(self) -> None:
        for part in (self.episodes_log, self.tb, self.metrics_pub, self.server, self.curve):
            if part is not None:
                part.close()
        if self.env is not None:
            self.env.close()
        self.ctx.term()


def run_env_host(args: HostArgs) -> int:
    """The env host process's main: returns its exit code."""
    stop = StopFlag()
    stop.install()
    host = EnvHost(args, stop)
    try:
        host.start()
        return host.run()
    except Stopped:
        log.info("env host: stopped on %s while waiting for agents to register", stop.reason)
        return 0
    except TimeoutError as e:
        log.error("env host: %s", e)
        return 1
    except HostError as e:
        log.error("env host: %s", e)
        return 1
    finally:
        host.close()


__all__ = ["EnvHost", "HostArgs", "HostError", "run_env_host"]
