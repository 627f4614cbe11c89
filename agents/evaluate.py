"""Greedy evaluation of a run's saved agents, in one process (`dwm-net eval`).

Each agent is rebuilt from the run's config and its checkpoint and acts on its own observation
only, greedily, recording nothing: the same decentralized execution as in the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.agent import Agent
from agents.checkpoints import CheckpointError, find_checkpoint, unreadable
from agents.local import env_spec, play_episode
from agents.process import agent_dir
from dwm_net.config import Config
from dwm_net.envs import make_env
from dwm_net.learning.types import EnvSpec
from dwm_net.seeding import derive_seed, seed_everything
from dwm_net.stats import wilson_interval


def load_agents(cfg: Config, spec: EnvSpec, run_dir: Path, checkpoint: str | None) -> tuple[list[Agent], list[Path]]:
    """Every agent of the run from `checkpoint` (a step-<N> name or N; None: each one's latest)."""
    agents, folders = [], []
    for i in range(spec.n_agents):
        folder = find_checkpoint(agent_dir(run_dir, i), checkpoint)
        agent = Agent(cfg, i, spec, None, seed=derive_seed(cfg.run.seed, i, "eval"))
        try:
            agent.load(folder)
        except Exception as e:  # noqa: BLE001  a damaged file of any kind: one line, not a traceback
            have = ", ".join(p.name.removeprefix("step-").lstrip("0") or "0"
                             for p in sorted(folder.parent.glob("step-*")) if p != folder) or "none"
            raise CheckpointError(f"{unreadable(folder, e)}; pass --checkpoint N for another one "
                                  f"(others: {have})") from None
        agents.append(agent)
        folders.append(folder)
    return agents, folders


def evaluate_run(cfg: Config, run_dir: Path, *, episodes: int, checkpoint: str | None = None,
                 seed: int = 12345, render: Path | None = None) -> dict[str, Any]:
    """Win rate with its 95% interval and mean return over `episodes` greedy episodes."""
    torch.set_num_threads(1)
    seed_everything(seed)
    env = make_env(cfg.env.scenario, seed=seed, backend=cfg.env.backend)
    try:
        spec = env_spec(env)
        agents, folders = load_agents(cfg, spec, run_dir, checkpoint)
        results = [play_episode(env, agents, greedy=True, record=False) for _ in range(episodes)]
        rendered = None
        if render is not None:
            rendered = _render(env, agents, render, seed)
    finally:
        env.close()
    wins = int(sum(won for _, won, _ in results))
    lo, hi = wilson_interval(wins, episodes)
    return {"run_dir": str(run_dir), "checkpoints": [str(f) for f in folders],
            "env_steps": [a.counters["env_steps"] for a in agents], "episodes": episodes,
            "wins": wins, "win_rate": wins / episodes, "win_rate_ci95": [lo, hi],
            "mean_return": float(np.mean([r for r, _, _ in results])),
            "mean_length": float(np.mean([n for _, _, n in results])), "render": rendered}


def _render(env: Any, agents: list[Agent], out: Path, seed: int) -> dict[str, Any]:
    from dwm_net.envs.render import render_episode

    for a in agents:
        a.reset_episode()

    def policy(e: Any) -> list[int]:
        obs, avail = e.get_obs(), np.asarray(e.get_avail_actions(), bool)
        return [a.act(obs[a.agent_id], avail[a.agent_id], greedy=True) for a in agents]

    summary = render_episode(env, policy, out, seed=seed)
    return {k: summary[k] for k in ("path", "steps", "return", "won", "outcome") if k in summary}


__all__ = ["evaluate_run", "load_agents", "wilson_interval"]
