"""In-process learning check used for docs/RESULTS.md (one seed, all agents in one process).

Usage: python docs/inprocess_check.py SCENARIO METHOD STEPS WINDOW [section.key=value ...]
Env: SEED (default 0); PATCH, comma-separated ablations: thresh (thresholded availability in
imagination), trunc (time limit as a terminal), shareac (one actor-critic for all agents).
Prints training win rate, return, entropy and how often an attack was available, per WINDOW steps.
"""
import collections
import json
import os
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
import dwm_net.learning.world_model as WM
from agents.agent import Agent
from agents.local import run_local
from dwm_net.config import load_config, replace

# usage: exp.py scenario method steps window key=val ... ; env PATCH=thresh
scen, method, steps, win = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ov = {}
for kv in sys.argv[5:]:
    k, v = kv.split("=")
    try: v = json.loads(v)
    except json.JSONDecodeError: pass  # not JSON: keep the string
    ov[k] = v
patch = os.environ.get("PATCH", "")
if "thresh" in patch:
    orig = WM.WorldModel.predict_avail
    WM.WorldModel.predict_avail = lambda self, feat, sample=True: orig(self, feat, sample=False)
if "trunc" in patch:
    import agents.local as L
    _mk = L.make_env
    def mk(*a, **k):
        env = _mk(*a, **k); st = env.step
        def step(actions):
            r, d, info = st(actions); info = dict(info); info["episode_limit"] = False
            return r, d, info
        env.step = step
        return env
    L.make_env = mk
if "shareac" in patch:
    import agents.local as L2
    _ma = L2.make_agents
    def ma(*a, **k):
        ags = _ma(*a, **k)
        for ag in ags[1:]:
            ag.learner.ac = ags[0].learner.ac
        return ags
    L2.make_agents = ma
cfg = replace(load_config("cpu"), **{"env.scenario": scen, **ov})
cnt = collections.Counter(); orig_act = Agent.act
def act(self, obs, avail, greedy=False):
    a = orig_act(self, obs, avail, greedy)
    av = np.asarray(avail)
    if av[6:].any(): cnt["av"] += 1; cnt["atk"] += int(a >= 6)
    cnt["n"] += 1; cnt["flee"] += int(a == 5)
    return a
Agent.act = act
t0 = time.time(); buf = []; nxt = win
def log(d):
    global nxt
    buf.append(d)
    if d["env_steps"] >= nxt:
        w = [b["won"] for b in buf]; r = [b["return"] for b in buf]
        last = buf[-1]
        g = lambda k: last.get("agent0/" + k, float("nan"))
        print(f"{d['env_steps']:6d} t={time.time()-t0:5.0f}s eps={len(buf)} win={sum(w)/len(w):.2f} ret={sum(r)/len(r):.2f} "
              f"ent={g('ac/entropy'):.3f} wmrew={g('wm/reward'):.4f} av={cnt['av']/max(cnt['n'],1):.2f} "
              f"P(atk|av)={cnt['atk']/max(cnt['av'],1):.2f} west={cnt['flee']/max(cnt['n'],1):.2f} ret_mean={g('ac/return_mean'):.2f}", flush=True)
        buf.clear(); cnt.clear(); nxt += win
res = run_local(cfg, steps=steps, seed=int(os.environ.get("SEED", "0")), method=method, log=log)
print("total", round(time.time()-t0), res["win_rate"], res["mean_return"], flush=True)
