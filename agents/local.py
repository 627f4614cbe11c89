"""Serial mode: every agent of a run in one process over the in-process transport.

The same `Agent` objects and the same message path (encode, byte-budgeted priority queue,
ledger-compatible stats, decode) as the multi-process run, minus sockets: sample-factory's
serial mode, for tests and debugging.

Lockstep per env step: each agent acts on its own observation and availability only; the team
reward goes to every agent. After each episode: every agent stores it, trains (schedule), and
offers what is new to its gates; then all transports pump and all agents receive.

``centralized`` here: one `DreamerLearner` (world model, actor-critic, replay) is shared by all
agents, whose replay therefore holds every agent's transitions, and it trains once per episode
(on agent 0's schedule; agents run in lockstep, so all schedules agree). Each agent still acts
with its own latent state. In the multi-process run this learner is its own process: agents send
it every transition as `ExperienceMsg` chunks (no gate) and it broadcasts `ParamsMsg` weights
back, both through the same byte-counted transport; here the object is shared instead, so no
bytes are counted for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agents.agent import Agent
from agents.learner import DreamerLearner
from agents.wire import link_budget
from comms.transport import InProcHub, InProcTransport
from dwm_net.config import Config, replace
from dwm_net.envs import make_env
from dwm_net.learning.types import EnvSpec
from dwm_net.seeding import derive_seed, seed_everything


def env_spec(env: Any) -> EnvSpec:
    info = env.get_env_info()
    return EnvSpec(obs_dim=info["obs_shape"], n_actions=info["n_actions"], n_agents=info["n_agents"],
                   episode_limit=info["episode_limit"])


def make_transports(cfg: Config, n_agents: int, hub: InProcHub) -> list[InProcTransport]:
    """One transport per agent on ``hub``, each with the configured byte budget and queue."""
    c = cfg.comms
    budget = link_budget(c)
    return [InProcTransport(hub, i, budget, heartbeat_s=c.heartbeat_s, heartbeat_misses=c.heartbeat_misses,
                            max_items=c.queue_size, max_age_s=c.max_age_s) for i in range(n_agents)]


def make_agents(cfg: Config, spec: EnvSpec, transports: list[InProcTransport], seed: int) -> list[Agent]:
    """One agent per env agent. All start from the same network parameters (paper 4.1) and
    get per-agent RNG seeds; under ``centralized`` they share one learner."""
    init_seed = derive_seed(seed, 0, "init")
    shared = DreamerLearner(cfg, spec, init_seed=init_seed) if cfg.share.method == "centralized" else None
    return [Agent(cfg, i, spec, transport, seed=derive_seed(seed, i), init_seed=init_seed, learner=shared)
            for i, transport in enumerate(transports)]


def play_episode(env: Any, agents: list[Agent], greedy: bool = False,
                 record: bool = True) -> tuple[float, bool, int]:
    """One lockstep episode, recorded by every agent unless ``record`` is False (evaluation):
    (team return, battle won, env steps)."""
    env.reset()
    for a in agents:
        a.reset_episode()
    ret, won, t, terminated = 0.0, False, 0, False
    while not terminated:
        obs, avail = env.get_obs(), np.asarray(env.get_avail_actions(), bool)  # (N, D), (N, A)
        actions = [a.act(obs[a.agent_id], avail[a.agent_id], greedy) for a in agents]
        reward, terminated, info = env.step(actions)
        # The episode limit ends the episode without being a terminal state of the task.
        term = terminated and not info.get("episode_limit", False)
        if record:
            for a, action in zip(agents, actions):
                a.record(obs[a.agent_id], action, reward, term, avail[a.agent_id], first=t == 0)
        ret, won, t = ret + reward, bool(info.get("battle_won", False)), t + 1
    if record:
        for a in agents:
            a.end_episode()
    return ret, won, t


def run_local(cfg: Config, *, steps: int, seed: int, method: str | None = None,
              log: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train for whole episodes until at least ``steps`` env steps have passed.

    ``method`` overrides ``cfg.share.method``. ``log`` receives one dict per episode. Returns
    episodes, env steps, train win rate and mean return (over all episodes), per-agent metrics
    and bytes sent per agent.
    """
    torch.set_num_threads(1)
    if method is not None:
        cfg = replace(cfg, **{"share.method": method})
    seed_everything(seed)
    env = make_env(cfg.env.scenario, seed=derive_seed(seed, 0, "env"), backend=cfg.env.backend)
    spec = env_spec(env)
    transports = make_transports(cfg, spec.n_agents, InProcHub())
    agents = make_agents(cfg, spec, transports, seed)
    trainers = agents[:1] if cfg.share.method == "centralized" else agents
    env_steps, returns, wins = 0, [], []
    try:
        while env_steps < steps:
            ret, won, length = play_episode(env, agents)
            env_steps += length
            for transport in transports:
                transport.advance_steps(length)
            returns.append(ret)
            wins.append(won)
            losses = [a.train_round() for a in trainers]
            for a in agents:
                a.share()
            for transport in transports:
                transport.pump()
            for a in agents:
                a.receive()
            if log is not None:
                log({"episode": len(returns), "env_steps": env_steps, "return": ret, "won": won,
                     **{f"agent{a.agent_id}/{k}": v for a, m in zip(trainers, losses) for k, v in m.items()}})
    finally:
        env.close()
        for transport in transports:
            transport.close()
    return {"method": cfg.share.method, "episodes": len(returns), "env_steps": env_steps,
            "win_rate": float(np.mean(wins)) if wins else 0.0,
            "mean_return": float(np.mean(returns)) if returns else 0.0,
            "agents": [a.metrics() for a in agents],
            "bytes_sent": [t.stats()["sent_bytes"] for t in transports]}
