"""How far is a greedy policy from flipping? Two checkpoints of one run on the same states.

    .venv/bin/python docs/policy_margin.py RUN_DIR CKPT_A CKPT_B [EPISODES] [--seed S]

Plays EPISODES greedy episodes (default 30) with every agent of RUN_DIR at checkpoint CKPT_A
(step-<N> or N) on the built-in simulator. At each step the agents of CKPT_B see the same
observations and are told the actions A took, so both policies are asked about the very same
histories. Prints, per agent, how often B's greedy action differs from A's, and A's margin (top
probability minus the runner-up) at every step and at the steps where B disagrees; then the win
rate of A, and of B played greedily on its own over the same env seeds (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from agents.agent import Agent
from agents.evaluate import load_agents
from agents.local import env_spec
from dwm_net.envs import make_env
from dwm_net.seeding import seed_everything
from launch.rundir import read_config


def record_probs(agent: Agent) -> list[torch.Tensor]:
    """From now on the agent's policy also appends its action probabilities (A,) to the list."""
    seen: list[torch.Tensor] = []
    policy = agent.learner.ac.acting_policy

    def recording(feat: torch.Tensor, avail: torch.Tensor, greedy: bool = False):
        action, logits = policy(feat, avail, greedy)
        seen.append(torch.softmax(logits, -1)[0])
        return action, logits

    agent.learner.ac.acting_policy = recording
    return seen


def play(env, agents: Sequence[Agent], probs: Sequence[list[torch.Tensor]],
         shadows: Sequence[Agent] = (), shadow_probs: Sequence[list[torch.Tensor]] = ()
         ) -> tuple[bool, dict[int, list[tuple[float, bool]]]]:
    """One greedy episode of `agents`; `shadows` follow the same history, told the actions
    taken. Returns (won, per agent [(A's margin, shadow's greedy action is A's)])."""
    env.reset()
    for a in [*agents, *shadows]:
        a.reset_episode()
    steps: dict[int, list[tuple[float, bool]]] = {a.agent_id: [] for a in agents}
    done, info = False, {}
    while not done:
        obs, avail = env.get_obs(), np.asarray(env.get_avail_actions(), bool)
        acts = [a.act(obs[a.agent_id], avail[a.agent_id], greedy=True) for a in agents]
        for i, s in enumerate(shadows):
            s.act(obs[i], avail[i], greedy=True)
            s.carry = replace(s.carry, prev_action=torch.tensor([acts[i]]))  # what A did
            if int(avail[i].sum()) > 1:  # a choice (a dead agent has only no-op)
                top2 = torch.topk(probs[i][-1], 2).values
                steps[i].append((float(top2[0] - top2[1]), int(shadow_probs[i][-1].argmax()) == acts[i]))
        _, done, info = env.step(acts)
    return bool(info.get("battle_won", False)), steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("ckpt_a")
    p.add_argument("ckpt_b")
    p.add_argument("episodes", type=int, nargs="?", default=30)
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()

    torch.set_num_threads(1)
    cfg = read_config(args.run_dir)
    env = make_env(cfg.env.scenario, seed=args.seed)
    a_agents, a_dirs = load_agents(cfg, env_spec(env), args.run_dir, args.ckpt_a)
    b_agents, b_dirs = load_agents(cfg, env_spec(env), args.run_dir, args.ckpt_b)
    print(f"# {args.run_dir}: A = {a_dirs[0].name}, B = {b_dirs[0].name}, {args.episodes} episodes")
    a_probs, b_probs = [record_probs(a) for a in a_agents], [record_probs(b) for b in b_agents]
    seed_everything(args.seed)
    wins, per_agent = 0, {a.agent_id: [] for a in a_agents}
    for _ in range(args.episodes):
        won, steps = play(env, a_agents, a_probs, b_agents, b_probs)
        wins += won
        for i, s in steps.items():
            per_agent[i].extend(s)
    print(f"A greedy: {wins}/{args.episodes} won")
    for i, s in per_agent.items():
        margin = np.array([m for m, _ in s])
        agree = np.array([g for _, g in s])
        flip = margin[~agree]
        print(f"agent {i}: {len(s)} steps with a choice; B's greedy action differs at {(~agree).sum()} "
              f"({100 * (~agree).mean():.1f}%); A's margin median {np.median(margin):.2f}, "
              f"share < 0.1: {100 * (margin < 0.1).mean():.1f}%; at B's disagreements: median "
              f"{np.median(flip) if flip.size else float('nan'):.2f}")
    env = make_env(cfg.env.scenario, seed=args.seed)
    seed_everything(args.seed)
    b_wins = sum(play(env, b_agents, b_probs)[0] for _ in range(args.episodes))
    print(f"B greedy on its own: {b_wins}/{args.episodes} won")


if __name__ == "__main__":
    main()
