"""Scripted policies over the SMAC interface: baselines, smoke tests and the bench.

A policy is ``policy(env) -> list[int]`` and reads only what SMAC exposes plus, for scripted
heuristics, unit positions from ``env.snapshot()`` (like SMAC's own heuristic, it cheats).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

N_NO_ATTACK = 6


class Policy(Protocol):
    def __call__(self, env) -> list[int]: ...


def random_actions(rng: np.random.Generator, avail: np.ndarray) -> np.ndarray:
    """(n_agents,) actions drawn uniformly from each row's available ones of ``avail`` (N, A).

    The argmax of i.i.d. uniform scores over the available entries (unavailable ones score -1)
    is uniform over them, without a Python loop over agents.
    """
    return (rng.random(avail.shape) * avail - (1 - avail)).argmax(axis=1)


def random_policy(rng: np.random.Generator) -> Policy:
    """Uniform over each agent's available actions."""

    def act(env) -> list[int]:
        return random_actions(rng, np.asarray(env.get_avail_actions())).tolist()

    return act


def nearest_policy(rng: np.random.Generator | None = None) -> Policy:
    """Focus fire: each agent attacks the nearest live enemy, walking toward it until it can."""

    def act(env) -> list[int]:
        snap = env.snapshot()
        n = env.n_agents
        avail = np.asarray(env.get_avail_actions())
        x, y, alive = snap["x"], snap["y"], snap["alive"]
        actions = []
        for a in range(n):
            if not alive[a]:
                actions.append(0)
                continue
            enemies = [j for j in range(n, len(x)) if alive[j]]
            if not enemies:
                actions.append(1)
                continue
            d = [np.hypot(x[j] - x[a], y[j] - y[a]) for j in enemies]
            j = enemies[int(np.argmin(d))]
            if avail[a, N_NO_ATTACK + j - n]:
                actions.append(N_NO_ATTACK + j - n)
                continue
            # the available move that brings it closest to the target
            best, best_d = 1, np.inf
            for m, (dx, dy) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
                if avail[a, 2 + m]:
                    dd = np.hypot(x[j] - (x[a] + dx), y[j] - (y[a] + dy))
                    if dd < best_d:
                        best, best_d = 2 + m, dd
            actions.append(best)
        return actions

    return act


def kite_policy(
    rng: np.random.Generator | None = None, threshold: float = 0.1, melee_range: float = 1.0
) -> Policy:
    """Focus fire with the two classic micro rules, for an agent that an enemy is targeting:
    always step away from a melee attacker (weapon range < ``melee_range``: 2m_vs_1z), and step
    away from a ranged one once health + shields fall to ``threshold`` of their maximum, so that
    it re-targets a team-mate (2s_vs_1sc).
    """
    focus = nearest_policy(rng)

    def act(env) -> list[int]:
        snap = env.snapshot()
        actions = focus(env)
        n = env.n_agents
        avail = np.asarray(env.get_avail_actions())
        x, y, tgt = snap["x"], snap["y"], snap["target"]
        frac = (snap["health"] + snap["shield"]) / (snap["health_max"] + snap["shield_max"])
        for a in range(n):
            threats = [j for j in range(n, len(x)) if snap["alive"][j] and tgt[j] == a]
            if not snap["alive"][a] or not threats:
                continue
            j = threats[0]
            if snap["range"][j] >= melee_range and frac[a] > threshold:
                continue
            best, best_d = actions[a], -np.inf
            for m, (dx, dy) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
                if avail[a, 2 + m]:
                    dd = np.hypot(x[j] - (x[a] + dx), y[j] - (y[a] + dy))
                    if dd > best_d:
                        best, best_d = 2 + m, dd
            actions[a] = best
        return actions

    return act


POLICIES: dict[str, Callable[[np.random.Generator], Policy]] = {
    "random": random_policy,
    "nearest": nearest_policy,
    "kite": kite_policy,
}


def make_policy(name: str, rng: np.random.Generator) -> Policy:
    try:
        return POLICIES[name](rng)
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}") from None


def run_episode(env, policy: Policy) -> dict[str, float]:
    """Play one episode; returns return, length, won."""
    env.reset()
    total, steps, info = 0.0, 0, {}
    terminated = False
    while not terminated:
        r, terminated, info = env.step(policy(env))
        total += r
        steps += 1
    return {"return": total, "length": steps, "won": float(info.get("battle_won", False))}
