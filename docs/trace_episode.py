"""What do a run's saved agents do? Step-by-step trace of greedy episodes (docs/PERFORMANCE.md).

    .venv/bin/python docs/trace_episode.py RUN_DIR [EPISODES] [PRINTED] [--seed S]

Rebuilds every agent of RUN_DIR from its latest checkpoint (as `dwm-net eval` does), plays
EPISODES greedy episodes on the built-in simulator (default 20) and prints the first PRINTED of
them step by step (default 2): per ally its health + shields as a fraction of the maximum, the
edge-to-edge distance to the enemy targeting it (or the nearest enemy), its action; per enemy its fraction
and target. Then, over all episodes, every *retreat*: a step at which an ally that an enemy was
targeting moved from inside that enemy's range to outside it, with the ally's health fraction
just before, split by won and lost episodes.
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

MOVES = {0: "noop", 1: "stop", 2: "N", 3: "S", 4: "E", 5: "W"}


def action_name(a: int) -> str:
    return MOVES.get(a, f"atk{a - 6}")


def edge(s: dict, i: int, j: int) -> float:
    """Distance between the units' edges, what weapon ranges are measured against."""
    return float(np.hypot(s["x"][i] - s["x"][j], s["y"][i] - s["y"][j]) - s["radius"][i] - s["radius"][j])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("episodes", type=int, nargs="?", default=20)
    p.add_argument("printed", type=int, nargs="?", default=2)
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args()

    torch.set_num_threads(1)
    seed_everything(args.seed)  # acting samples the RSSM latents: without this, runs differ
    cfg = read_config(args.run_dir)
    env = make_env(cfg.env.scenario, seed=args.seed)
    agents, folders = load_agents(cfg, env_spec(env), args.run_dir, None)
    n = env.n_agents
    print(f"# {args.run_dir} ({folders[0].name}), {args.episodes} greedy episodes, seed {args.seed}")
    retreats: dict[bool, list[float]] = {True: [], False: []}
    wins, returns = 0, []
    for ep in range(args.episodes):
        env.reset()
        for a in agents:
            a.reset_episode()
        done, ret, lines, ep_retreats = False, 0.0, [], []
        info: dict = {}
        while not done:
            s = env.snapshot()
            obs, avail = env.get_obs(), np.asarray(env.get_avail_actions(), bool)
            acts = [a.act(obs[a.agent_id], avail[a.agent_id], greedy=True) for a in agents]
            frac = (s["health"] + s["shield"]) / (s["health_max"] + s["shield_max"])
            enemies = [j for j in range(n, len(s["x"])) if s["alive"][j]]
            cells, threat = [], {}
            for i in range(n):
                if not s["alive"][i]:
                    cells.append(f"a{i} dead")
                    continue
                hunters = [j for j in enemies if s["target"][j] == i]
                near = hunters[0] if hunters else min(enemies, key=lambda j, i=i: edge(s, i, j), default=None)
                d = edge(s, i, near) if near is not None else float("nan")
                if hunters:
                    threat[i] = (hunters[0], d, frac[i])
                cells.append(f"a{i} {frac[i]:.2f} d{d:4.1f}{'*' if hunters else ' '} {action_name(acts[i]):5s}")
            foes = " ".join(f"e{j - n} {frac[j]:.2f}->a{s['target'][j]}" for j in enemies)
            lines.append(f"  t{s['t']:3d}  " + " | ".join(cells) + f"  || {foes}")
            reward, done, info = env.step(acts)
            after = env.snapshot()
            for i, (j, d0, f0) in threat.items():
                d1 = edge(after, i, j)
                if d0 <= s["range"][j] < d1:
                    ep_retreats.append(float(f0))
            ret += float(reward)
        won = bool(info.get("battle_won", False))
        wins += won
        returns.append(ret)
        retreats[won].extend(ep_retreats)
        if ep < args.printed:
            print(f"episode {ep}: return {ret:.1f}, {len(lines)} steps, {'won' if won else 'lost'}"
                  "  (* = an enemy targets this ally; d = edge distance to it)")
            print("\n".join(lines))
    print(f"\n{wins}/{args.episodes} won, mean return {np.mean(returns):.1f}")
    for won in (True, False):
        r = np.array(retreats[won])
        label = "won" if won else "lost"
        if r.size:
            print(f"retreats out of the targeting enemy's range in {label} episodes: {r.size}, "
                  f"ally health+shields before: median {np.median(r):.2f}, range {r.min():.2f}-{r.max():.2f}")
        else:
            print(f"retreats out of the targeting enemy's range in {label} episodes: none")


if __name__ == "__main__":
    main()
