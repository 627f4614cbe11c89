"""The agent process: one decentralized agent over ZeroMQ, driven by the env host's lockstep.

It starts from (config, agent id, env host endpoint, run dir) alone:

1. bind its peer-mesh XPUB (`ZmqTransport`), register that endpoint with the env host over the
   control channel (`ControlClient`), get the `SpecMsg` (env sizes and every peer's endpoint);
2. build its `Agent` (own networks, replay, gates, seed) and load its latest checkpoint from
   ``<run_dir>/checkpoints/agent-<i>/`` if there is one (a restart or ``--resume``);
3. loop on the control channel: each `StepMsg` is recorded against the previous action and
   answered with an `ActionMsg`; an episode's last step (terminated or truncated) stores the
   episode, runs the training round and offers what is new to the gates (`Agent.share`);
   between messages it pumps the transport and takes in peers' messages (`Agent.receive`);
   a `SpecMsg` later on means a peer restarted (reconnect); `StopMsg` ends the run.

Records: ``agent-<i>.jsonl`` (one line per training episode, mirrored to TensorBoard under
``tb/agent-<i>/``), ``ledger-<i>.jsonl`` (every byte sent or dropped), checkpoints every ``run.checkpoint_every`` env steps and at the end, and
rate-limited metrics to the launcher's collector when one is given.

SIGTERM/SIGINT: stop at the next message boundary, checkpoint, exit 0. A signal that arrives
during a training round ends the round at the next update boundary (`should_stop`), so the
checkpoint written then is consistent; the longest wait is one update.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import zmq

from agents.agent import Agent
from agents.checkpoints import load_latest, save_checkpoint
from agents.stopflag import StopFlag
from agents.wire import link_budget
from comms.budget import Budget
from comms.ledger import Ledger
from comms.messages import LEARNER, ActionMsg, Message, SpecMsg, StepMsg, StopMsg
from comms.metrics import MetricsPublisher
from comms.rendezvous import ControlClient, Stopped
from comms.security import CurveSetup, KeyRing
from comms.transport import ZmqTransport
from dwm_net.config import Config
from dwm_net.learning.types import EnvSpec
from dwm_net.runlog import JsonlWriter, Stopwatch, TensorBoardLog, now, read_jsonl
from dwm_net.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)

# How long the loop waits for the env host before it services the transport again (seconds):
# bounds the delay of heartbeats and of taking in peers' messages.
LOOP_TICK_S = 0.05
BUDGET_WINDOW_S = 5.0  # budget use is reported over windows at least this long


@dataclass(frozen=True)
class AgentArgs:
    cfg: Config
    agent_id: int
    connect: str  # env host control endpoint, e.g. tcp://10.0.0.1:5555
    run_dir: Path
    bind: str = "tcp://127.0.0.1:*"  # this agent's peer-mesh XPUB
    advertise: str | None = None  # endpoint peers connect to; default: the bound one
    metrics: str | None = None  # the launcher's metrics collector, if any
    keys: Path | None = None  # CURVE key directory (comms.security); None: plain tcp
    register_timeout_s: float = 120.0
    host_timeout_s: float = 900.0  # give up when the env host is silent this long


# Record keys (and their "<key>/<detail>" forms) that `link_metrics` carries across processes.
_LINK_TOTALS = frozenset({"sent_bytes", "recv_bytes", "drops"})


def agent_dir(run_dir: Path, agent_id: int) -> Path:
    return run_dir / "checkpoints" / f"agent-{agent_id}"


class MemberProcess:
    """What every process on the control channel and peer mesh shares: one ZeroMQ context,
    optional CURVE, the peer-mesh transport (with its ledger), the control client and the
    metrics publisher. `open` binds, registers and returns the spec."""

    def __init__(self, member_id: int, key_name: str, cfg: Config, run_dir: Path, stop: StopFlag) -> None:
        self.id, self.key_name, self.cfg, self.run_dir, self.stop = member_id, key_name, cfg, run_dir, stop
        self.ctx = zmq.Context()
        self.curve: CurveSetup | None = None
        self.transport: ZmqTransport | None = None
        self.control: ControlClient | None = None
        self.metrics_pub: MetricsPublisher | None = None
        self.ledger: Ledger | None = None
        self.records: JsonlWriter | None = None
        self.tb: TensorBoardLog | None = None
        self.watch = Stopwatch()  # where this process's time goes
        self._last_publish = -math.inf
        self._link_base: dict[str, int] = {}  # link totals of this member's earlier processes

    def open(self, *, connect: str, bind: str, advertise: str | None, keys: Path | None,
             metrics: str | None, budget: Budget, ledger_name: str, register_timeout_s: float) -> SpecMsg:
        c = self.cfg.comms
        public_key = None
        if keys is not None:
            keyring = KeyRing.load(keys, self.key_name)
            self.curve = CurveSetup(keyring, self.ctx)
            public_key = keyring.public_key.decode()
        self.ledger = Ledger(self.run_dir / ledger_name)
        self.transport = ZmqTransport(
            self.id, bind, {}, budget, ctx=self.ctx, ledger=self.ledger, curve=self.curve,
            heartbeat_s=c.heartbeat_s, heartbeat_misses=c.heartbeat_misses,
            max_items=c.queue_size, max_age_s=c.max_age_s)
        self.control = ControlClient(connect, self.id, ctx=self.ctx, curve=self.curve)
        spec = self.control.register(advertise or self.transport.bound_endpoint,
                                     timeout_s=register_timeout_s, public_key=public_key,
                                     should_stop=self.stop)
        if spec.scenario != self.cfg.env.scenario:
            raise RuntimeError(f"{self.key_name}: the env host runs {spec.scenario}, this "
                               f"process's config says {self.cfg.env.scenario}; start both with "
                               f"the same --scenario")
        if metrics is not None:
            self.metrics_pub = MetricsPublisher(connect=metrics, ctx=self.ctx)
        return spec

    def connect_peers(self, spec: SpecMsg) -> None:
        """Subscribe to the members this one hears from: every other member, except that under
        `centralized` an agent hears only the learner. Publishers send only to subscribers, so its
        experience chunks then go to the learner alone instead of also to every other agent."""
        assert self.transport is not None
        peers = {int(k): v for k, v in spec.peers.items() if int(k) != self.id}
        if self.cfg.share.method == "centralized" and self.id != LEARNER and LEARNER in peers:
            peers = {LEARNER: peers[LEARNER]}
        self.transport.connect_peers(peers)

    def continue_link_totals(self, records: Path) -> None:
        """Byte and drop totals go on from this member's last record (in `records`) instead of
        restarting at 0 with each process: a resumed or restarted member's records and live view
        then show the run's totals. Heartbeats count in neither direction (not data)."""
        last: dict[str, Any] = {}
        for last in read_jsonl(records):  # the last record is the one wanted
            pass
        self._link_base = {k: int(v) for k, v in last.items()
                           if k.split("/")[0] in _LINK_TOTALS and isinstance(v, (int, float))}

    def link_metrics(self) -> dict[str, Any]:
        """This member's bytes, drops, rejections and peers, flat (for records and the view)."""
        assert self.transport is not None
        stats = self.transport.stats()
        out: dict[str, Any] = {"sent_bytes": stats["sent_bytes"]}
        for kind, k in stats["by_kind"].items():
            out[f"sent_bytes/{kind}"] = k["sent_bytes"]
        received = {k: v for k, v in stats["received_bytes"].items() if k != "heartbeat"}
        out["recv_bytes"] = sum(received.values())
        for kind, nbytes in received.items():
            out[f"recv_bytes/{kind}"] = nbytes
        out["drops"] = sum(stats["dropped"].values())
        for reason, n in stats["dropped"].items():
            if n:
                out[f"drops/{reason}"] = n
        for key, base in self._link_base.items():
            out[key] = out.get(key, 0) + base
        out["rejected"] = sum(stats["rejected"].values())
        peers = stats["peers"]
        alive = sum(state != "lost" for state in peers.values())
        out["peers"] = f"{alive}/{len(peers)} " + ("lost" if alive < len(peers) else "alive")
        out["queued"] = stats["queued"]
        return out

    def busy_stop(self) -> bool:
        """`should_stop` for a training round: asked between updates, it also heartbeats, so
        that peers do not report this member lost during a long round (`paper`: ~12 s)."""
        if self.transport is not None:
            self.transport.heartbeat()
        return self.stop()

    def publish(self, values: dict[str, Any], step: int, *, force: bool = False) -> None:
        """Rate-limited metrics to the collector (scalars only)."""
        if self.metrics_pub is None:
            return
        self.metrics_pub.publish(self.id, {k: v for k, v in values.items()
                                           if isinstance(v, (int, float, str))}, step=step)
        if force:
            self.metrics_pub.flush(step=step)

    def publish_due(self) -> bool:
        """Whether building a metrics snapshot now is worth it (it is the costly part)."""
        if self.metrics_pub is None:
            return False
        now_s = time.monotonic()
        if now_s - self._last_publish < self.metrics_pub.min_interval_s:
            return False
        self._last_publish = now_s
        return True

    def close(self) -> None:
        for part in (self.records, self.tb, self.metrics_pub, self.control, self.transport,
                     self.ledger, self.curve):
            if part is not None:
                part.close()
        self.ctx.term()


class AgentProcess(MemberProcess):
    """One agent: its `Agent`, its lockstep with the env host and its run-dir records."""

    def __init__(self, args: AgentArgs, stop: StopFlag) -> None:
        super().__init__(args.agent_id, f"agent-{args.agent_id}", args.cfg, args.run_dir, stop)
        self.args = args
        self.agent: Agent | None = None
        self._pending: tuple[np.ndarray, np.ndarray, int, bool] | None = None  # obs, avail, a, first
        self._episode = -1
        self._last_checkpoint_step = 0
        self._budget_mark: tuple[float, int, int] | None = None  # (time, env steps, sent bytes)
        self._budget_value: float | None = None  # budget use over the last full window
        self.budget = link_budget(args.cfg.comms)
        self.checkpoints = agent_dir(args.run_dir, self.id)

    # --- set-up ---------------------------------------------------------------------------------

    def start(self) -> SpecMsg:
        a, cfg = self.args, self.cfg
        spec = self.open(connect=a.connect, bind=a.bind, advertise=a.advertise, keys=a.keys,
                         metrics=a.metrics, budget=self.budget, ledger_name=f"ledger-{self.id}.jsonl",
                         register_timeout_s=a.register_timeout_s)
        env_spec = EnvSpec(obs_dim=spec.obs_dim, n_actions=spec.n_actions, n_agents=spec.n_agents,
                           episode_limit=spec.episode_limit)
        seed = cfg.run.seed
        seed_everything(derive_seed(seed, self.id, "process"))
        self.agent = Agent(cfg, self.id, env_spec, self.transport, seed=derive_seed(seed, self.id),
                           init_seed=derive_seed(seed, 0, "init"),
                           feed_learner=cfg.share.method == "centralized")
        folder = load_latest(self.checkpoints, self.agent.load)
        if folder is not None:
            self._last_checkpoint_step = self.agent.counters["env_steps"]
            # the step every ledger line and heartbeat carries continues from the checkpoint
            self.transport.advance_steps(self._last_checkpoint_step)
            log.info("agent %d: resumed from %s (%d env steps)", self.id, folder,
                     self._last_checkpoint_step)
        elif (a.run_dir / f"agent-{self.id}.jsonl").exists():
            log.warning("agent %d: no checkpoint saved yet (the first is at %d env steps): starting "
                        "afresh; its step counts in agent-%d.jsonl restart at 0", self.id,
                        cfg.run.checkpoint_every, self.id)
        self.connect_peers(spec)
        self.continue_link_totals(a.run_dir / f"agent-{self.id}.jsonl")
        self.records = JsonlWriter(a.run_dir / f"agent-{self.id}.jsonl")
        self.tb = TensorBoardLog(a.run_dir / "tb" / f"agent-{self.id}")
        return spec

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve the env host until `StopMsg` or a stop signal; returns the exit code."""
        assert self.control is not None and self.transport is not None and self.agent is not None
        last_heard = time.monotonic()
        while not self.stop.set:
            with self.watch("wait"):  # for the env host: its env, the other agents
                messages = self.control.poll(LOOP_TICK_S)
            if messages:
                last_heard = time.monotonic()
            for msg in messages:
                if not self._handle(msg):
                    return self._finish()
            with self.watch("comms"):
                self._service()
            if time.monotonic() - last_heard > self.args.host_timeout_s:
                log.error("agent %d: no message from the env host at %s for %.0f s; stopping "
                          "(restart with the same run dir to resume)", self.id,
                          self.args.connect, self.args.host_timeout_s)
                self._finish()
                return 1
        log.info("agent %d: stopping on %s", self.id, self.stop.reason or "signal")
        return self._finish()

    def _service(self) -> None:
        """Between env-host messages: send what is queued, take in what peers sent."""
        assert self.transport is not None and self.agent is not None
        self.transport.pump()
        self.agent.receive()
        for event, peer in self.transport.events():
            log.info("agent %d: peer %d %s", self.id, peer, event)
        self._publish()

    def _handle(self, msg: Message) -> bool:
        """Act on one control message; False when the run is over."""
        if isinstance(msg, StepMsg):
            self._on_step(msg)
        elif isinstance(msg, SpecMsg):
            self.connect_peers(msg)  # a peer restarted with a new endpoint
        elif isinstance(msg, StopMsg):
            log.info("agent %d: the env host ended the run (%s)", self.id, msg.reason)
            return False
        else:
            log.warning("agent %d: ignored a %s message on the control channel", self.id, msg.KIND)
        return True

    def _on_step(self, msg: StepMsg) -> None:
        agent, control = self.agent, self.control
        assert agent is not None and control is not None and self.transport is not None
        if msg.t == 0 or msg.episode != self._episode:
            # A new episode, or the first message after a restart mid-episode: start afresh.
            agent.reset_episode()
            self._pending, self._episode = None, msg.episode
        if self._pending is not None and not msg.greedy:
            obs, avail, action, first = self._pending
            agent.record(obs, action, msg.reward, msg.terminated, avail, first)
            self.transport.advance_steps(1)
        if msg.terminated or msg.truncated:
            self._pending = None
            if msg.greedy:
                agent.reset_episode()
            else:
                self._end_episode()
            return
        with self.watch("act"):
            action = agent.act(msg.obs, msg.avail, greedy=msg.greedy)
        self._pending = (msg.obs, msg.avail, action, self._pending is None)
        control.send(ActionMsg(sender=self.id, seq=msg.seq, step=msg.step, action=action))

    def _end_episode(self) -> None:
        agent = self.agent
        assert agent is not None and self.records is not None
        agent.end_episode()
        t0 = time.perf_counter()
        with self.watch("train"):
            losses = agent.train_round(should_stop=self.busy_stop)
        train_s = time.perf_counter() - t0
        with self.watch("share"):
            agent.share()
        with self.watch("comms"):
            self._service()
        record = {"time": now(), **self.snapshot(), "train_s": train_s, **losses}
        self.records.write(record)
        if self.tb is not None:
            self.tb.scalars(record, agent.counters["env_steps"])
        every = self.cfg.run.checkpoint_every
        steps = agent.counters["env_steps"]
        if every and steps // every > self._last_checkpoint_step // every:
            self.checkpoint()

    # --- records --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Flat metrics: the agent's counters and losses plus this link's bytes and drops."""
        assert self.agent is not None
        out: dict[str, Any] = {"agent": self.id, **self.agent.metrics(), **self.link_metrics(),
                               **self.watch.as_metrics()}
        out["rejected"] += sum(v for k, v in self.agent.counters.items() if k.startswith("rejected/"))
        use = self._budget_use(out["sent_bytes"])
        if use is not None:
            out["budget_use"] = use
        return out

    def _budget_use(self, sent: int) -> float | None:
        """Fraction of the byte allowance used over the last `BUDGET_WINDOW_S` or more
        (None: unlimited, or no full window yet)."""
        b = self.budget
        if b.rate is None or self.agent is None:
            return None
        mark = (time.monotonic(), self.agent.counters["env_steps"], sent)
        if self._budget_mark is None:
            self._budget_mark = mark
            return None
        prev = self._budget_mark
        if mark[0] - prev[0] >= BUDGET_WINDOW_S:
            allowance = b.rate * ((mark[0] - prev[0]) if b.per == "s" else (mark[1] - prev[1]))
            self._budget_value = min(1.0, (mark[2] - prev[2]) / allowance) if allowance > 0 else None
            self._budget_mark = mark
        return self._budget_value

    def _publish(self) -> None:
        if self.agent is not None and self.publish_due():
            self.publish(self.snapshot(), self.agent.counters["env_steps"])

    def checkpoint(self) -> None:
        agent = self.agent
        assert agent is not None
        steps = agent.counters["env_steps"]
        save_checkpoint(self.checkpoints, steps, agent.save)
        self._last_checkpoint_step = steps

    def _finish(self) -> int:
        if self.agent is not None and self.agent.counters["env_steps"] > 0:
            self.checkpoint()
        if self.transport is not None:
            self.transport.pump()  # a last chance for what is queued (linger is 0)
        if self.agent is not None:
            snapshot = self.snapshot()
            if self.records is not None:
                # A last record with the final counters, bytes and timers: a run stopped before
                # an agent finished its first training episode would otherwise leave none.
                self.records.write({"time": now(), **snapshot, "final": True})
            self.publish(snapshot, self.agent.counters["env_steps"], force=True)
        return 0


class _Runnable(Protocol):
    def start(self) -> object: ...
    def run(self) -> int: ...
    def close(self) -> None: ...


def run_member(make: Callable[[StopFlag], _Runnable]) -> int:
    """A member process's main: one torch thread, stop signals caught, start, run, close;
    returns the exit code (0: the run ended or was stopped)."""
    torch.set_num_threads(1)
    stop = StopFlag()
    stop.install()
    proc = make(stop)
    try:
        proc.start()
        return proc.run()
    except Stopped:
        log.info("stopped on %s while waiting for the env host's spec", stop.reason)
        return 0
    finally:
        proc.close()


def run_agent(args: AgentArgs) -> int:
    """The agent process's main."""
    return run_member(lambda stop: AgentProcess(args, stop))


__all__ = ["AgentArgs", "AgentProcess", "MemberProcess", "StopFlag", "agent_dir", "run_agent", "run_member"]
