"""How narrow is the winning behaviour on 2s_vs_1sc? (docs/PERFORMANCE.md, docs/RESULTS.md)

    .venv/bin/python docs/kite_window.py [EPISODES]   # default 50 per row, ~30 s

Table 1: scripted focus fire in which the stalker the crawler targets steps out of range once
its health + shields fall to `threshold` of their maximum (`kite_policy`), over the threshold.
Table 2: plain focus fire with each agent's action replaced, with probability eps, by a random
available one: how often undirected exploration around focus fire wins by accident (4x EPISODES).
Table 3: the same, but an agent that deviated repeats its deviation on the next step with
probability `repeat` (while available): temporally correlated exploration, which can produce the
two consecutive steps away that leaving the crawler's range takes (8x EPISODES).
"""
import sys

import numpy as np

from dwm_net.envs import make_env
from dwm_net.envs.policies import kite_policy, nearest_policy, run_episode

episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 50
env = make_env("2s_vs_1sc", seed=1)


def row(label: str, res: list[dict]) -> str:
    wins = sum(bool(r["won"]) for r in res)
    return (f"| {label} | {wins}/{len(res)} | {np.mean([r['return'] for r in res]):.1f} | "
            f"{np.mean([r['length'] for r in res]):.1f} |")


print("| retreat threshold | wins | mean return | mean length |\n|---|---|---|---|")
for th in np.arange(0.0, 0.425, 0.025):
    pol = kite_policy(np.random.default_rng(0), threshold=float(th))
    print(row(f"{th:.3f}", [run_episode(env, pol) for _ in range(episodes)]))

rng = np.random.default_rng(0)
focus = nearest_policy(rng)
print("\n| eps | wins | mean return | mean length |\n|---|---|---|---|")
for eps in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5):
    def noisy(env, eps=eps):
        actions = focus(env)
        avail = np.asarray(env.get_avail_actions())
        for a in range(len(actions)):
            if rng.random() < eps:
                actions[a] = int(rng.choice(np.flatnonzero(avail[a])))
        return actions
    print(row(f"{eps:.2f}", [run_episode(env, noisy) for _ in range(4 * episodes)]))


print("\n| eps | repeat | wins | mean return | mean length |\n|---|---|---|---|---|")
last: dict[int, int] = {}  # agent -> its deviation of the previous step
for eps in (0.05, 0.1, 0.2):
    for repeat in (0.5, 0.8):

        def sticky(env, eps=eps, repeat=repeat):
            actions = focus(env)
            avail = np.asarray(env.get_avail_actions())
            if env.episode_steps == 0:
                last.clear()
            for a in range(len(actions)):
                if a in last and avail[a, last[a]] and rng.random() < repeat:
                    actions[a] = last.pop(a)
                elif rng.random() < eps:
                    actions[a] = int(rng.choice(np.flatnonzero(avail[a])))
                else:
                    last.pop(a, None)
                    continue
                last[a] = actions[a]
            return actions
        print(row(f"{eps:.2f} | {repeat:.1f}", [run_episode(env, sticky) for _ in range(8 * episodes)]))
