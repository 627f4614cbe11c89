"""`dwm-net launch`: start the env host, the agents (and the learner), supervise, show, stop.

Every part is its own OS process (`python -m launch <role> ...`) talking ZeroMQ over tcp
loopback, exactly as it would across machines. The launcher only:

- holds the run directory's lock (`rundir.lock_run_dir`) while it runs, so a second launcher
  on the same run exits instead of starting processes beside the first one's;
- hands each child the path of the run directory's `config.json`;
- collects metrics (a SUB socket the children's PUB sockets connect to) for the live view;
- supervises: a dead agent or learner is restarted from its last checkpoint (counted, shown);
  one that dies more than `max_restarts` times stops the run with a message naming its log;
- stops: on Ctrl-C / SIGTERM, every child gets SIGTERM (it checkpoints and exits) and whatever
  is still alive after `STOP_GRACE_S` gets SIGKILL, so nothing outlives the launcher by more
  than 5 s. Children run in their own session (a terminal's Ctrl-C reaches only the launcher,
  which stops them in order) and get SIGTERM from the kernel if the launcher itself dies.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from comms.messages import ENV_HOST, LEARNER
from comms.metrics import MetricsSubscriber
from dwm_net.config import Config
from dwm_net.runlog import now, write_json_atomic

from .live import LiveView, RunInfo, RunState, plain_line
from .rundir import CONFIG_FILE, DONE_FILE, RunDirError, lock_run_dir, read_host_state
from .sweep import BETA_METHODS

STOP_GRACE_S = 4.0  # SIGTERM -> SIGKILL: children get this long to checkpoint and exit
DONE_GRACE_S = 60.0  # after the env host finished: agents get this long to save and exit
# An agent (or the learner) that exits 0 has finished: the env host ended the run, and it exits
# a moment later itself. Only one that exits 0 while the env host still runs this long after is
# restarted (someone stopped that process alone).
FINISHED_GRACE_S = 15.0
PLAIN_EVERY_S = 10.0  # --no-live: one status line this often
PARENT_ENV = "DWM_NET_PARENT_PID"


def free_port() -> int:
    """A TCP port free on loopback right now (the child binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    role: str  # "env-host", "agent" or "learner"
    member: int  # ENV_HOST, the agent id, or LEARNER
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    status: str = "starting"
    log_file: IO[bytes] | None = field(default=None, repr=False)
    exited_ok_at: float | None = None  # monotonic time it was first seen exited with code 0

    @property
    def name(self) -> str:
        return self.role if self.member < 0 else f"{self.role}-{self.member}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file is None:
            self.log_file = open(self.log_path, "ab")  # noqa: SIM115 (held for the child's life)
        env = {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.status = "running"
        self.exited_ok_at = None

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


@dataclass(frozen=True)
class LaunchArgs:
    cfg: Config
    run_dir: Path
    n_agents: int
    keys: Path | None = None
    live: bool = True
    max_restarts: int = 3
    python: str = sys.executable


class Launcher:
    def __init__(self, args: LaunchArgs) -> None:
        self.args = args
        self.cfg = args.cfg
        self.children: list[Child] = []
        self.collector: MetricsSubscriber | None = None
        self.stop_reason: str | None = None
        self.state = RunState()
        self.foreign_metrics: Counter[int] = Counter()  # metrics messages from unknown senders
        beta = self.cfg.share.beta if self.cfg.share.method in BETA_METHODS else None  # β means nothing else
        self.info = RunInfo(scenario=self.cfg.env.scenario, method=self.cfg.share.method,
                            beta=beta, budget=self.cfg.comms.budget,
                            seed=self.cfg.run.seed, preset=self.cfg.preset, n_agents=args.n_agents,
                            steps=self.cfg.run.steps, run_dir=str(args.run_dir))

    # --- children -------------------------------------------------------------------------------

    def commands(self, control: str, metrics: str | None) -> list[tuple[str, int, list[str]]]:
        """(role, member, argv) of every child, in start order."""
        a = self.args
        base = [a.python, "-m", "launch"]
        common = ["--config", str(a.run_dir / CONFIG_FILE), "--run-dir", str(a.run_dir)]
        if metrics is not None:
            common += ["--metrics", metrics]
        if a.keys is not None:
            common += ["--keys", str(a.keys)]
        out = [("env-host", ENV_HOST, [*base, "env-host", "--bind", control, *common])]
        for i in range(a.n_agents):
            out.append(("agent", i, [*base, "agent", "--id", str(i), "--connect", control, *common]))
        if self.cfg.share.method == "centralized":
            out.append(("learner", LEARNER, [*base, "learner", "--connect", control, *common]))
        return out

    def start(self) -> None:
        self.collector = MetricsSubscriber(bind="tcp://127.0.0.1:*")
        control = f"tcp://127.0.0.1:{free_port()}"
        logs = self.args.run_dir / "logs"
        for role, member, argv in self.commands(control, self.collector.bound_endpoint):
            child = Child(role, member, argv, logs / f"{role}{'' if member < 0 else f'-{member}'}.log")
            child.start()
            self.children.append(child)
            self.state.set_status(member, child.status)

    def host(self) -> Child:
        return self.children[0]

    # --- supervision ----------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> int:
        """Supervise until the env host ends the run or a stop is requested; exit code (2: the
        run directory is in use by another launcher, nothing started)."""
        try:
            lock_run_dir(self.args.run_dir)
        except RunDirError as e:
            self.fail(str(e))
            return 2
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: terminal closed
            signal.signal(sig, self.request_stop)
        view = LiveView(self.info, self.state) if self.args.live else None
        if view is None:  # the live view's header shows it; plain lines do not
            print(f"run dir: {self.args.run_dir}", flush=True)
        self.start()
        code = 0
        try:
            if view is not None:
                view.__enter__()
            try:
                code = self._supervise(view)
                if self.stop_reason is not None and code == 0:
                    print(f"stopping on {self.stop_reason}: every process saves its state; resume with "
                          f"`dwm-net launch --resume {self.args.run_dir}`", flush=True)
                    code = 130 if self.stop_reason == "SIGINT" else 143
            finally:
                self.shutdown()  # before the last frame, so that it shows how each process ended
        finally:
            if view is not None:
                view.__exit__(None, None, None)  # draws the final frame
        print(plain_line(self.info, self.state, time.monotonic()), flush=True)
        if view is None:
            print(f"run dir: {self.args.run_dir}", flush=True)
        return code

    def _supervise(self, view: LiveView | None) -> int:
        """The loop: metrics in, children checked and restarted, the view or a plain line out;
        the exit code once the run is over (0 also when a stop was requested)."""
        last_plain = time.monotonic()
        while self.stop_reason is None:
            self._take_metrics(0.25)
            outcome = self._check_children()
            if outcome is not None:
                return outcome
            now = time.monotonic()
            if view is not None:
                view.refresh(now)
            elif now - last_plain >= PLAIN_EVERY_S:
                last_plain = now
                print(plain_line(self.info, self.state, now), flush=True)
        return 0

    def _take_metrics(self, timeout_s: float) -> None:
        """Metrics of this run's own processes into the view; any other sender id (the
        collector's port is on loopback, so another local program) is counted and named once."""
        assert self.collector is not None
        members = {child.member for child in self.children}
        for msg in self.collector.poll(timeout_s):
            if msg.sender in members:
                self.state.update(msg.sender, msg.values)
                continue
            self.foreign_metrics[msg.sender] += 1
            if self.foreign_metrics[msg.sender] == 1:
                print(f"warning: ignoring metrics from sender {msg.sender}, not a process of this run "
                      "(another program on this machine is sending to the launcher's metrics port)",
                      file=sys.stderr, flush=True)

    def _check_children(self) -> int | None:
        """Restart what died; an exit code when the run is over (0: done)."""
        host = self.host()
        code = host.poll()
        if code is not None:
            host.status = f"exited {code}"
            self.state.set_status(ENV_HOST, host.status)
            if code == 0:
                self._wait_for_agents()
                self._mark_done()
                return 0
            self.fail(f"the env host exited with code {code}; see {host.log_path}")
            return 1
        for child in self.children[1:]:
            code = child.poll()
            if code is None:
                continue
            if code == 0:  # finished: the env host is about to exit too (see FINISHED_GRACE_S)
                now_s = time.monotonic()
                if child.exited_ok_at is None:
                    child.exited_ok_at = now_s
                    self.state.set_status(child.member, "exited 0")
                if now_s - child.exited_ok_at < FINISHED_GRACE_S:
                    continue
            if child.restarts >= self.args.max_restarts:
                deaths = child.restarts + 1
                self.fail(f"{child.name} died {deaths} time{'s' if deaths > 1 else ''} (last exit "
                          f"code {code}); see {child.log_path}. The run dir is resumable with --resume.")
                return 1
            child.restarts += 1
            child.start()  # it loads its last checkpoint and registers again
            self.state.set_restarts(child.member, child.restarts)
            self.state.set_status(child.member, f"restarted ({code})")
        return None

    def _mark_done(self) -> None:
        """`done.json`: the run reached its steps (sweeps skip it; plots may trust it)."""
        if self.stop_reason is not None:
            return
        # The env host's own counters, not the (lossy) metrics channel.
        steps = read_host_state(self.args.run_dir).get("env_steps")
        write_json_atomic(self.args.run_dir / DONE_FILE, {
            "finished": now(), "env_steps": steps,
            "steps": self.cfg.run.steps,
            "restarts": {child.name: child.restarts for child in self.children}})

    def _wait_for_agents(self) -> None:
        """The env host sent stop: let the others checkpoint and exit, then reap them."""
        deadline = time.monotonic() + DONE_GRACE_S
        for child in self.children[1:]:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal(signal.SIGTERM)
            self._take_metrics(0)

    def fail(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)

    def shutdown(self) -> None:
        """SIGTERM every child still running, SIGKILL after `STOP_GRACE_S`, reap all."""
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        for child in self.children:
            code = child.poll()
            child.status = f"exited {code}"
            self.state.set_status(child.member, child.status)
            child.close()
        try:
            self._take_metrics(0)
        finally:
            if self.collector is not None:
                self.collector.close()


def die_with_parent() -> None:
    """In a child the launcher started: get SIGTERM when the launcher dies (Linux), and exit
    at once if it is already gone. A no-op elsewhere or when not started by a launcher."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:
        sys.exit(1)


__all__ = ["Child", "LaunchArgs", "Launcher", "die_with_parent", "free_port"]
