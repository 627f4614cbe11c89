"""`dwm-net sweep`: a grid of runs, K at a time, restartable across days.

The grid is scenarios x methods x betas x seeds, with betas only for the methods they mean
something to (experience, rollout, both). Each cell is one `dwm-net launch` in its own run
directory, ``<root>/<scenario>-<method>[-b<beta>]-s<seed>``:

- ``done.json`` there with at least the asked steps: complete, skipped;
- ``config.json`` without ``done.json``: unfinished, continued with ``launch --resume``;
- nothing: started fresh.

So a sweep stopped at any point (Ctrl-C, a reboot) is continued by running the same command
again, and no finished run is ever redone. Run directories are named by cell, not by settings,
so a sweep whose flags (preset, --set, budget, ...) differ from what an existing run directory
was made with refuses to start (`mismatched_runs`) instead of counting that run as its own. Launchers run in their own sessions; Ctrl-C stops
each one the way Ctrl-C stops a launch (its processes checkpoint; the run stays resumable).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .rundir import CONFIG_FILE, DONE_FILE, n_agents_of, read_host_state

BETA_METHODS = ("experience", "rollout", "both")


@dataclass(frozen=True)
class Cell:
    scenario: str
    method: str
    beta: float | None  # None: the method has no beta
    seed: int

    @property
    def name(self) -> str:
        beta = "" if self.beta is None else f"-b{self.beta:g}"
        return f"{self.scenario}-{self.method}{beta}-s{self.seed}"


def expand(scenarios: Sequence[str], methods: Sequence[str], betas: Sequence[float],
           seeds: Sequence[int]) -> list[Cell]:
    """Every cell of the grid, seeds innermost so early results cover every method."""
    cells = []
    for scenario in scenarios:
        for method in methods:
            for beta in (betas if method in BETA_METHODS else [None]):
                for seed in seeds:
                    cells.append(Cell(scenario, method, beta, seed))
    return cells


def status_of(run_dir: Path, steps: int) -> str:
    """"done", "unfinished" or "new"."""
    done = run_dir / DONE_FILE
    if done.exists():
        try:
            reached = json.loads(done.read_text()).get("env_steps")
        except (OSError, ValueError):
            reached = None
        if isinstance(reached, int) and reached >= steps:
            return "done"
        return "unfinished"  # finished a shorter run: extend it
    return "unfinished" if (run_dir / CONFIG_FILE).exists() else "new"


def flat_config(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Settings a sweep may change on an existing run: it extends runs to more steps.
MAY_DIFFER = frozenset({"run.steps"})


def config_differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``key=recorded (sweep: wanted)`` for each setting both configs have with different values.
    Keys only one side has are left out: fields added to the config after a run was made."""
    old, new = flat_config(recorded), flat_config(json.loads(json.dumps(wanted)))  # compare as JSON reads back
    keys = sorted(old.keys() & new.keys(), key=lambda k: (k.count("."), k))  # "preset" first
    return [f"{k}={old[k]!r} (sweep: {new[k]!r})" for k in keys if k not in MAY_DIFFER and old[k] != new[k]]


def mismatched_runs(root: Path, wanted: Mapping[str, Mapping[str, Any]]) -> list[tuple[Path, list[str]]]:
    """Existing run directories under `root` (by cell name, the keys of `wanted`) whose recorded
    config differs from the config the sweep would give that cell. Unreadable configs are left
    to `launch --resume`, which says what is wrong with them."""
    out = []
    for name, config in wanted.items():
        path = root / name / CONFIG_FILE
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))["config"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(recorded, Mapping):
            diffs = config_differences(recorded, config)
            if diffs:
                out.append((root / name, diffs))
    return out


def progress_of(run_dir: Path) -> int:
    """Training env steps so far, from the env host's counters (0 if none yet)."""
    steps = read_host_state(run_dir).get("env_steps", 0)
    return steps if isinstance(steps, int) else 0


@dataclass
class Job:
    cell: Cell
    run_dir: Path
    argv: list[str]
    resumed: bool
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)
    started: float = 0.0
    code: int | None = None
    stopped: bool = False  # ended by the sweep's own stop (Ctrl-C), not by failing


@dataclass(frozen=True)
class SweepArgs:
    cells: list[Cell]
    root: Path
    steps: int
    parallel: int
    common: list[str]  # flags for every launch: --preset, --set, --budget, --eval-every, ...
    python: str = sys.executable


class Sweep:
    def __init__(self, args: SweepArgs) -> None:
        self.args = args
        self.stop_reason: str | None = None
        self.jobs: list[Job] = []
        self.skipped: list[Cell] = []
        self.started: float | None = None  # monotonic time `run` began
        self.start_fraction = 0.0  # progress already made then (skipped and part-done runs)
        for cell in args.cells:
            run_dir = args.root / cell.name
            status = status_of(run_dir, args.steps)
            if status == "done":
                self.skipped.append(cell)
                continue
            if status == "unfinished":
                argv = ["launch", "--resume", str(run_dir), "--steps", str(args.steps)]
            else:
                argv = ["launch", "--scenario", cell.scenario, "--method", cell.method,
                        "--seed", str(cell.seed), "--steps", str(args.steps), "--run-dir", str(run_dir),
                        *([] if cell.beta is None else ["--beta", f"{cell.beta:g}"]), *args.common]
            self.jobs.append(Job(cell, run_dir, [args.python, "-m", "launch", *argv, "--no-live"],
                                 status == "unfinished"))

    def _start(self, job: Job) -> None:
        logs = self.args.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        job.log = open(logs / f"{job.cell.name}.log", "ab")  # noqa: SIM115 (held while it runs)
        job.proc = subprocess.Popen(job.argv, stdout=job.log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        job.started = time.monotonic()

    def _reap(self, job: Job) -> bool:
        assert job.proc is not None
        code = job.proc.poll()
        if code is None:
            return False
        job.code = code
        if job.log is not None:
            job.log.close()
        return True

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stop_reason = signal.Signals(signum).name

    def run(self, on_tick: Any = None, tick_s: float = 1.0) -> int:
        """Run every job, `parallel` at a time; `on_tick(self)` after each poll. Exit code:
        0 all done, 1 some run failed, 130/143 stopped."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.request_stop)
        self.started, self.start_fraction = time.monotonic(), self.fraction()
        waiting = list(self.jobs)
        running: list[Job] = []
        while (waiting or running) and self.stop_reason is None:
            while waiting and len(running) < self.args.parallel:
                job = waiting.pop(0)
                self._start(job)
                running.append(job)
            running = [job for job in running if not self._reap(job)]
            if on_tick is not None:
                on_tick(self)
            if running:
                try:  # wake early when the oldest job ends
                    running[0].proc.wait(timeout=tick_s)  # type: ignore[union-attr]
                except subprocess.TimeoutExpired:
                    pass
        if self.stop_reason is not None:
            self._stop(running)
            return 130 if self.stop_reason == "SIGINT" else 143
        return 0 if all(job.code == 0 for job in self.jobs) else 1

    def _stop(self, running: list[Job]) -> None:
        """Stop each launcher as Ctrl-C would (it stops its processes within 5 s)."""
        for job in running:
            if job.proc is not None and job.proc.poll() is None:
                job.stopped = True
                os.killpg(job.proc.pid, signal.SIGINT)
        for job in running:
            if job.proc is None:
                continue
            try:
                job.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(job.proc.pid, signal.SIGKILL)
                job.proc.wait()
            self._reap(job)

    # --- reporting ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        running = sum(j.proc is not None and j.code is None for j in self.jobs)
        return {"total": len(self.args.cells), "skipped": len(self.skipped),
                "done": sum(j.code == 0 for j in self.jobs),
                "failed": sum(j.code not in (None, 0) and not j.stopped for j in self.jobs),
                "stopped": sum(j.stopped for j in self.jobs), "running": running,
                "waiting": sum(j.proc is None for j in self.jobs)}

    def fraction(self) -> float:
        """Overall progress in env steps over the whole grid (skipped runs count as done)."""
        total = len(self.args.cells) * self.args.steps
        steps = len(self.skipped) * self.args.steps
        steps += sum(min(self.args.steps, progress_of(j.run_dir)) for j in self.jobs)
        return steps / total if total else 1.0

    def eta(self, fraction: float) -> str:
        """`format_eta` of the time left at `fraction` (what `fraction()` just returned: it reads
        every run's counters, so callers pass it rather than have it read twice), from the
        env-step rate since `run` began. Rough: methods cost different time per step."""
        if self.started is None:
            return format_eta(None)
        return format_eta(eta_seconds(time.monotonic() - self.started, self.start_fraction, fraction))


def eta_seconds(elapsed_s: float, start_fraction: float, fraction: float) -> float | None:
    """Time left at the rate the sweep has gone since it started: elapsed * left / gained; None
    before any progress (runs skipped or already part-done at the start do not count as rate)."""
    gained = fraction - start_fraction
    if gained <= 0.0 or elapsed_s <= 0.0:
        return None
    return elapsed_s * max(0.0, 1.0 - fraction) / gained


def format_eta(seconds: float | None) -> str:
    """'eta 1h05m' / 'eta 12m' / 'eta <1m'; 'eta ?' before there is a rate."""
    if seconds is None:
        return "eta ?"
    minutes = round(seconds / 60)
    if minutes < 1:
        return "eta <1m"
    return f"eta {minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"eta {minutes}m"


def check_parallel(parallel: int, cells: list[Cell]) -> str | None:
    """A warning when K runs would need more processes than the machine has cores."""
    cores = os.cpu_count() or 1
    widest = max((n_agents_of(c.scenario) + 1 + (c.method == "centralized") for c in cells), default=1)
    if parallel > 1 and parallel * widest > cores:  # one run at a time is the least it can do
        return (f"--parallel {parallel} runs up to {parallel * widest} processes on {cores} cores; "
                f"they will share cores and each run will be slower")
    return None


__all__ = ["BETA_METHODS", "Cell", "Job", "Sweep", "SweepArgs", "check_parallel", "eta_seconds", "expand",
           "format_eta", "progress_of", "status_of"]
