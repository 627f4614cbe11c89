"""Does an agent's latent state carry its own health? (docs/PERFORMANCE.md, "What holds the goal back")

    .venv/bin/python docs/latent_probe.py RUN_DIR [EPISODES] [--checkpoint N] [--seed S]

The actor sees only the world model's features (GRU state + sampled latents), never the raw
observation, and the winning retreat on 2s_vs_1sc depends on the stalker's own health + shields
to about one crawler hit (~0.19 of their sum). This plays EPISODES greedy episodes with RUN_DIR's
agents (latest checkpoint, or step N) and decodes, at every step, the features each agent acts on back into an
observation (the world model's decoder): per agent, the mean absolute error of every observation
entry against the true one, next to that entry's standard deviation over the episodes (an error
well below it means the features carry the entry). On 2s_vs_1sc the last two entries are the
agent's own health and shields (fractions of their maxima).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from agents.evaluate import load_agents
from agents.local import env_spec
from dwm_net.envs import make_env
from dwm_net.seeding import seed_everything
from launch.rundir import read_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("episodes", type=int, nargs="?", default=10)
    p.add_argument("--checkpoint", default=None, help="step-<N> or N (default: each agent's latest)")
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()

    torch.set_num_threads(1)
    seed_everything(args.seed)
    cfg = read_config(args.run_dir)
    env = make_env(cfg.env.scenario, seed=args.seed)
    agents, folders = load_agents(cfg, env_spec(env), args.run_dir, args.checkpoint)
    n = env.n_agents
    true: list[list[np.ndarray]] = [[] for _ in range(n)]  # per agent: (D,) observations
    decoded: list[list[np.ndarray]] = [[] for _ in range(n)]
    for _ in range(args.episodes):
        env.reset()
        for a in agents:
            a.reset_episode()
        done = False
        while not done:
            obs, avail = env.get_obs(), np.asarray(env.get_avail_actions(), bool)
            alive = env.snapshot()["alive"]
            acts = []
            for a in agents:
                i = a.agent_id
                acts.append(a.act(obs[i], avail[i], greedy=True))
                if alive[i]:
                    with torch.no_grad():
                        decoded[i].append(a.learner.wm.decoder(a.carry.latent.feat())[0].numpy())
                    true[i].append(np.asarray(obs[i], np.float32))
            _, done, _ = env.step(acts)
    print(f"# {args.run_dir} ({folders[0].name}), {args.episodes} greedy episodes, seed {args.seed}")
    print("| agent | steps | entry | mean abs error | std of the entry |")
    print("|---|---|---|---|---|")
    for i in range(n):
        t, d = np.array(true[i]), np.array(decoded[i])
        err, std = np.abs(d - t).mean(0), t.std(0)
        for k in range(t.shape[1]):
            print(f"| {i} | {len(t)} | {k} | {err[k]:.3f} | {std[k]:.3f} |")


if __name__ == "__main__":
    main()
