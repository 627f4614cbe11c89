"""Wind-up study for docs/SIMULATOR.md: run with `.venv/bin/python docs/windup_study.py`."""
import numpy as np

from dwm_net.envs import make_env
from dwm_net.envs.policies import kite_policy, nearest_policy, random_policy, run_episode

print("| crawler wind-up (loops) | focus fire | kite after 4th hit | kite after 5th hit | crawler HP left, focus fire (median) |")
print("|---|---|---|---|---|")
for w in [0, 2, 3, 4]:
    env = make_env("2s_vs_1sc", seed=1, unit_overrides={"spine_crawler": {"windup_loops": w}})
    cells = []
    for pol in (nearest_policy(), kite_policy(None, 0.3), kite_policy(None, 0.1)):
        res = [run_episode(env, pol) for _ in range(50)]
        cells.append(f"{np.mean([r['won'] for r in res]):.0%}")
    hp = []
    pol = nearest_policy()
    for _ in range(20):
        run_episode(env, pol); hp.append(env.snapshot()["health"][-1])
    print(f"| {w} | " + " | ".join(cells) + f" | {np.median(hp):.0f} |")
print()
print("| zealot wind-up (loops) | random | focus fire | kite |")
print("|---|---|---|---|")
for w in [0, 1, 2]:
    env = make_env("2m_vs_1z", seed=1, unit_overrides={"zealot": {"windup_loops": w}})
    cells = []
    for pol in (random_policy(np.random.default_rng(0)), nearest_policy(), kite_policy()):
        res = [run_episode(env, pol) for _ in range(50)]
        cells.append(f"{np.mean([r['won'] for r in res]):.0%}")
    print(f"| {w} | " + " | ".join(cells) + " |")
