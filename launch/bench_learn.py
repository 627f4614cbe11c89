"""`dwm-net bench learn`: wall-clock and env steps until the eval win rate reaches a target.

Each seed is one real `dwm-net launch` (all its processes, as a user runs it), watched through
its run directory: the clock starts when the launch command starts, and a seed is done when an
evaluation (all its `run.eval_episodes` episodes logged) reaches the target, or when the time
limit passes. Then the launch is stopped (SIGINT, as a user would) and where the time went is
read from the processes' own timers: agents (acting, training, sharing, comms, waiting for the
env host), the env host (env stepping, waiting for the agents). A seed that reached the target can then have
its final agents evaluated on more episodes (`confirm`), after its clock has stopped.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from dwm_net.runlog import read_jsonl

from .rundir import read_host_state

POLL_S = 1.0  # how often the run directory is read


def evals(run_dir: Path, episodes_per_eval: int) -> list[dict[str, Any]]:
    """Complete evaluations so far: env steps, win rate, return, wall time of the last episode."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rec in read_jsonl(run_dir / "episodes.jsonl"):
        if rec.get("mode") == "eval":
            groups[int(rec["env_steps"])].append(rec)
    out = []
    for steps, recs in sorted(groups.items()):
        if len(recs) >= episodes_per_eval:
            recs = recs[-episodes_per_eval:]  # a resumed run may have repeated an eval
            out.append({"env_steps": steps, "win_rate": sum(bool(r["won"]) for r in recs) / len(recs),
                        "return": sum(float(r["return"]) for r in recs) / len(recs),
                        "time": max(float(r["time"]) for r in recs)})
    return out


def training_wins(run_dir: Path) -> dict[str, Any]:
    """Training episodes played and won, and the env step of the first win (None if none): a seed
    that misses the target either never found a win or found one and did not keep it. Where the
    run had exploration noise, also the wins in noisy episodes and the env step of the first win
    without noise: the two kinds of win need not lead to the same thing."""
    played, won, first = 0, 0, None
    noisy_won, first_plain, has_noise = 0, None, False
    for rec in read_jsonl(run_dir / "episodes.jsonl"):
        if rec.get("mode") != "train":
            continue
        played += 1
        has_noise = has_noise or "noise" in rec
        if rec.get("won"):
            won += 1
            steps = int(rec["env_steps"])
            first = steps if first is None else first
            if rec.get("noise"):
                noisy_won += 1
            elif first_plain is None:
                first_plain = steps
    out: dict[str, Any] = {"episodes": played, "won": won, "first_win_env_steps": first}
    if has_noise:
        out |= {"won_noise": noisy_won, "first_plain_win_env_steps": first_plain}
    return out


def timers(run_dir: Path, n_agents: int) -> dict[str, Any]:
    """Seconds per phase from each process's last record: agents' `time/*`, the env host's."""
    agents = []
    for i in range(n_agents):
        last: dict[str, Any] = {}
        for rec in read_jsonl(run_dir / f"agent-{i}.jsonl"):
            last = rec
        agents.append({k.removeprefix("time/"): v for k, v in last.items() if k.startswith("time/")})
    return {"agents": agents, "env_host": read_host_state(run_dir).get("timers", {})}


def confirm(run_dir: Path, episodes: int, *, python: str = sys.executable,
            timeout_s: float = 600.0) -> dict[str, Any]:
    """`dwm-net eval` of the run's final agents over ``episodes`` greedy episodes on the eval
    command's own env seeds: whether a reached target holds beyond the in-run evaluation's one
    snapshot of 10 episodes. Never raises: a failure is reported as {"error": ...}."""
    argv = [python, "-m", "launch", "eval", str(run_dir), "--episodes", str(episodes), "--json"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"dwm-net eval ran past {timeout_s:.0f} s"}
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"dwm-net eval exited {r.returncode}: {tail}"}
    try:
        result = json.loads(lines[-1])
        return {k: result[k] for k in ("episodes", "env_steps", "win_rate", "win_rate_ci95", "mean_return")}
    except (ValueError, KeyError, TypeError) as exc:
        return {"error": f"dwm-net eval printed no result ({type(exc).__name__}: {exc})"}


def run_seed(seed: int, *, run_dir: Path, launch_args: list[str], target: float, max_minutes: float,
             episodes_per_eval: int, n_agents: int, confirm_episodes: int = 0,
             python: str = sys.executable) -> dict[str, Any]:
    argv = [python, "-m", "launch", "launch", "--seed", str(seed), "--steps", "100000000",
            "--run-dir", str(run_dir), "--no-live", *launch_args]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(run_dir.parent / f"{run_dir.name}.launch.log", "wb")  # noqa: SIM115
    wall0, t0 = time.time(), time.monotonic()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    reached: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    try:
        while time.monotonic() - t0 < max_minutes * 60 and proc.poll() is None:
            history = evals(run_dir, episodes_per_eval)
            reached = next((e for e in history if e["win_rate"] >= target), None)
            if reached is not None:
                break
            try:
                proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                pass
    finally:
        elapsed = time.monotonic() - t0
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    history = evals(run_dir, episodes_per_eval)
    out: dict[str, Any] = {"seed": seed, "run_dir": str(run_dir), "reached": reached is not None,
                           "elapsed_s": elapsed, "exit_code": proc.returncode,
                           "evals": [[e["env_steps"], e["win_rate"], e["return"]] for e in history],
                           "training": training_wins(run_dir), "timers": timers(run_dir, n_agents)}
    if reached is not None:
        out["wall_s_to_target"] = reached["time"] - wall0
        out["env_steps_to_target"] = reached["env_steps"]
        if confirm_episodes > 0:
            out["confirm"] = confirm(run_dir, confirm_episodes, python=python)
    elif history:
        out["final_win_rate"] = history[-1]["win_rate"]
        out["final_env_steps"] = history[-1]["env_steps"]
    return out


def median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall-clock and env steps to the target; a seed that never reached it counts as
    infinitely slow, so the median is None unless more than half the seeds reached it."""
    n = len(results)
    walls = sorted(r.get("wall_s_to_target", float("inf")) for r in results)
    steps = sorted(r.get("env_steps_to_target", float("inf")) for r in results)
    med_wall, med_steps = median(walls), median(steps)
    return {"seeds": n, "reached": sum(r["reached"] for r in results),
            "median_wall_s_to_target": None if med_wall in (None, float("inf")) else med_wall,
            "median_env_steps_to_target": None if med_steps in (None, float("inf")) else med_steps}


__all__ = ["confirm", "evals", "median", "run_seed", "summarize", "timers", "training_wins"]
