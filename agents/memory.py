"""Peak memory of one agent's learner with every buffer full (`dwm-net bench memory`).

An agent process holds its own replay, the shared-experience replay (peers' chunks) and the
received-rollout buffer; all three are at capacity late in a long run. This fills them to
capacity with synthetic data of the scenario's shapes (memory does not depend on the values),
then runs what a training round runs, including the largest update (own imagination plus as
many received rollouts), and reads the process's peak RSS after each stage.

Run it in a fresh process: `ru_maxrss` is the process's high-water mark since it started.
"""

from __future__ import annotations

import time
from itertools import cycle, islice
from typing import Any

import numpy as np
import torch

from agents.learner import DreamerLearner
from agents.local import env_spec
from dwm_net.config import load_config, replace
from dwm_net.envs import make_env
from dwm_net.learning.bench import peak_rss_mib
from dwm_net.learning.replay import EpisodeReplay
from dwm_net.learning.rollouts import from_trajectory


def _fill(buf: EpisodeReplay, episode_len: int, rng: np.random.Generator) -> None:
    """Episode-long chunks of random values until ``buf`` holds its capacity."""
    a = buf.n_actions
    while len(buf) < buf.capacity:
        t = min(episode_len, buf.capacity - len(buf))
        first = np.zeros(t, bool)
        buf.add_chunk(rng.random((t, buf.obs_dim), dtype=np.float32), rng.integers(0, a, t),
                      rng.random(t, dtype=np.float32), np.zeros(t, bool), rng.random((t, a)) < 0.5, first)


def bench_memory(preset: str, scenario: str, seed: int = 0) -> dict[str, Any]:
    """Peak RSS (MiB) after each stage and the buffers' sizes, with one torch thread (the
    caller's thread count is restored)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(preset, scenario, seed)
    finally:
        torch.set_num_threads(threads)


def _measure(preset: str, scenario: str, seed: int) -> dict[str, Any]:
    cfg = replace(load_config(preset), **{"env.scenario": scenario})
    env = make_env(scenario, seed=seed)
    spec = env_spec(env)
    env.close()
    rng = np.random.default_rng(seed)
    stages: dict[str, float] = {"start": peak_rss_mib()}
    learner = DreamerLearner(cfg, spec, init_seed=seed)
    stages["networks"] = peak_rss_mib()
    _fill(learner.replay, spec.episode_limit, rng)
    _fill(learner.shared, spec.episode_limit, rng)
    stages["replays full"] = peak_rss_mib()
    t0 = time.perf_counter()
    learner.train_world_model(rng, use_shared=True)
    stages["world-model update"] = peak_rss_mib()
    _, own = learner.train_actor_critic(rng, use_received=False)
    stages["actor-critic update (own)"] = peak_rss_mib()
    for rollout in islice(cycle(from_trajectory(own.traj)), learner.imagined.capacity):
        learner.imagined.add(rollout)
    stages["rollout buffer full"] = peak_rss_mib()
    metrics, _ = learner.train_actor_critic(rng, use_received=True)
    stages["actor-critic update (own + received)"] = peak_rss_mib()
    return {
        "preset": preset, "scenario": scenario, "obs_dim": spec.obs_dim, "n_actions": spec.n_actions,
        "replay_capacity": cfg.train.capacity,
        "replay_mb": (learner.replay.nbytes + learner.shared.nbytes) / 1e6,
        "rollout_buffer": {"capacity": learner.imagined.capacity, "mb": learner.imagined.nbytes / 1e6},
        "received_rollouts_in_update": int(metrics["received_rollouts"]),
        "updates_s": time.perf_counter() - t0,
        "stages_peak_rss_mib": {k: round(v, 1) for k, v in stages.items()},
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


__all__ = ["bench_memory"]
