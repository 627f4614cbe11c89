"""Environment throughput: env steps/s and episodes/s under a uniformly random policy."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import make_env
from .policies import random_actions


def machine_info() -> dict[str, object]:
    """What a benchmark ran on, so numbers from different machines are never mixed up."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        info["numba"] = None
    return info


@contextmanager
def one_core() -> Iterator[int | None]:
    """Run this process on one core (the bench measures single-core speed), then restore."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = max(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def bench_env(scenario: str, episodes: int = 200, seed: int = 0, with_obs: bool = False) -> dict:
    """Play ``episodes`` episodes with a uniformly random policy over available actions.

    ``with_obs`` also builds every agent's observation and the state each step, as a learner's
    loop does. One warm-up episode (numba compilation) is excluded from the timing.
    """
    env = make_env(scenario, seed=seed)
    rng = np.random.default_rng(seed)

    def run(n_episodes: int) -> tuple[int, int]:
        steps = wins = 0
        for _ in range(n_episodes):
            env.reset()
            terminated = False
            info: dict = {}
            while not terminated:
                _, terminated, info = env.step(random_actions(rng, env.avail_array))
                if with_obs:
                    env.get_obs()
                    env.get_state()
                steps += 1
            wins += int(info.get("battle_won", False))
        return steps, wins

    run(1)
    t0 = time.perf_counter()
    steps, wins = run(episodes)
    dt = time.perf_counter() - t0
    return {
        "scenario": scenario,
        "episodes": episodes,
        "steps": steps,
        "seconds": dt,
        "steps_per_s": steps / dt,
        "episodes_per_s": episodes / dt,
        "mean_episode_length": steps / episodes,
        "random_win_rate": wins / episodes,
        "with_obs": with_obs,
    }
