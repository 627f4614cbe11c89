"""Where does credit for a rare win get lost? World model, critic and imagination of a run's
saved agent, on the won and lost episodes in its own replay (docs/PERFORMANCE.md).

    .venv/bin/python docs/win_credit.py RUN_DIR [--agent I] [--seed S] [--horizon H]

Loads agent I's latest checkpoint (networks and replay), finds the whole episodes in its own
replay, and compares the won ones with as many lost ones (the latest of each):
1. the reward head on the last step (a win's last step: the win bonus plus the kill, ~8.3-8.9 on 2s_vs_1sc);
2. the critic's value k steps before the end;
3. imagination (the agent's actor, 64 rollouts of the run's horizon, or H, per start state) from the state k
   steps before the end: mean imagined return (rewards weighted by the predicted continuation)
   and the share of rollouts that imagine a step worth more than half the win bonus (the
   simulator's reward_win in reward units, 7.8 on 2s_vs_1sc).
If the reward head knows the win but imagination from a few steps earlier never reaches it,
the world model's dynamics (or the actor) lose the credit; if the critic is flat, the returns
never carry it back.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from agents.evaluate import load_agents
from agents.local import env_spec
from dwm_net.envs import make_env
from dwm_net.learning.actor_critic import discount_weights
from dwm_net.learning.types import Latent
from dwm_net.seeding import seed_everything
from launch.rundir import read_config

KS = (1, 5, 10, 15, 20, 30)
ROLLOUTS = 64


def episodes(replay) -> list[dict[str, np.ndarray]]:
    """Whole own episodes (first step stored, ends in a terminal step), oldest first."""
    st = replay.state_dict()  # the stored transitions, oldest first
    out = []
    for e in np.unique(st["episode"]):
        sel = np.flatnonzero(st["episode"] == e)
        if not st["first"][sel[0]] or not st["term"][sel[-1]]:
            continue  # cut by eviction, or still running at the checkpoint
        out.append({"obs": st["obs"][sel].astype(np.float32), "action": st["action"][sel].astype(np.int64),
                    "reward": st["reward"][sel], "first": st["first"][sel]})
    return out


@torch.no_grad()
def analyse(agent, eps: list[dict[str, np.ndarray]], gamma: float, horizon: int,
            win_reward: float) -> dict[str, list[float]]:
    """Per episode: the last step's reward and its prediction, and for each k the critic's value,
    the mean imagined return and the share of rollouts with a step worth > win_reward / 2."""
    wm, ac = agent.learner.wm, agent.learner.ac
    rows: dict[str, list[float]] = {"pred_last": [], "true_last": []}
    for k in KS:
        rows.update({f"v{k}": [], f"imag{k}": [], f"win{k}": []})
    for ep in eps:
        obs = torch.from_numpy(ep["obs"])[None]
        action = torch.from_numpy(ep["action"])[None]
        first = torch.from_numpy(ep["first"])[None]
        post, _, _ = wm.observe(obs, action, first)
        succ = wm.successor(post, action, first)  # (1, T, F): the state each reward is predicted from
        rows["pred_last"].append(float(wm.reward_head(succ[0, -1])))
        rows["true_last"].append(float(ep["reward"][-1]))
        value = ac.value(post.feat()[0])  # (T,)
        t_len = len(ep["reward"])
        for k in KS:
            if k > t_len:
                for key in ("v", "imag", "win"):
                    rows[f"{key}{k}"].append(np.nan)
                continue
            t = t_len - k
            rows[f"v{k}"].append(float(value[t]))
            start = Latent(post.deter[0, t].expand(ROLLOUTS, -1), post.stoch[0, t].expand(ROLLOUTS, -1, -1))
            traj = wm.imagine(start, ac.policy, horizon, gamma)
            ret = (discount_weights(traj.discount) * traj.reward).sum(0)  # (ROLLOUTS,)
            rows[f"imag{k}"].append(float(ret.mean()))
            rows[f"win{k}"].append(float((traj.reward.max(0).values > 0.5 * win_reward).float().mean()))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--agent", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--horizon", type=int, default=None, help="imagination length (default: the run's)")
    args = p.parse_args()
    torch.set_num_threads(1)
    seed_everything(args.seed)
    cfg = read_config(args.run_dir)
    env = make_env(cfg.env.scenario, seed=args.seed)
    agents, folders = load_agents(cfg, env_spec(env), args.run_dir, None)
    agent = agents[args.agent]
    horizon = args.horizon or cfg.train.horizon
    eps = episodes(agent.learner.replay)
    # The win bonus in the agents' reward units (the simulator's scaling): the last step of a
    # won episode is worth at least this; "imagined win" means a step worth half of it.
    bonus = env.scale_reward(env.reward_win)
    is_win = [bool(ep["reward"][-1] >= bonus) for ep in eps]
    won = [ep for ep, w in zip(eps, is_win) if w]
    lost = [ep for ep, w in zip(eps, is_win) if not w][-max(len(won), 20):]
    print(f"# {args.run_dir} agent {args.agent} ({folders[args.agent].name}): {len(eps)} whole episodes in "
          f"replay, {len(won)} won; {ROLLOUTS} rollouts of {horizon} steps per start state")
    print("| episodes | n | last reward: true / predicted | " +
          " | ".join(f"k={k}: V / imagined return / imagined win" for k in KS) + " |")
    print("|---|---|---|" + "---|" * len(KS))
    for label, group in (("won", won), ("lost", lost)):
        if not group:
            continue
        r = analyse(agent, group, cfg.train.gamma, horizon, bonus)
        cells = [f"{np.nanmean(r[f'v{k}']):.2f} / {np.nanmean(r[f'imag{k}']):.2f} / {np.nanmean(r[f'win{k}']):.0%}"
                 for k in KS]
        print(f"| {label} | {len(group)} | {np.mean(r['true_last']):.2f} / {np.mean(r['pred_last']):.2f} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
