"""How close is one actor-critic update to this core's matrix-multiply throughput?

    .venv/bin/python docs/ac_flops.py [PRESET]   # default cpu, ~30 s

Counts the multiply-adds of one `ActorCritic.update` (the critic's target pass, then per PPO
epoch the actor's and the critic's forward and backward passes; no gradient to the detached
features, so the first layer's backward is its weight gradient only), times real updates on an
imagined batch, and times the same matrix products alone with `torch.mm` (one thread). The
ratio says how much of the update is the matrix work that its sizes make unavoidable.
"""
import sys
import time
from itertools import pairwise

import numpy as np
import torch

from agents.local import env_spec
from dwm_net.config import load_config
from dwm_net.envs import make_env
from dwm_net.learning.actor_critic import ActorCritic
from dwm_net.learning.bench import _fill_replay
from dwm_net.learning.replay import EpisodeReplay
from dwm_net.learning.types import SeqBatch
from dwm_net.learning.world_model import TensorBatch, WorldModel

torch.set_num_threads(1)
torch.manual_seed(0)
cfg = load_config(sys.argv[1] if len(sys.argv) > 1 else "cpu")
m, tr = cfg.model, cfg.train
spec = env_spec(make_env("2s_vs_1sc"))
wm = WorldModel(spec, m)
ac = ActorCritic(spec, wm.feat_size, m, tr)
replay = EpisodeReplay(tr.capacity, spec.obs_dim, spec.n_actions)
_fill_replay(replay, "2s_vs_1sc", max(tr.batch_size * tr.seq_len, tr.prefill), 0)
with torch.no_grad():
    tb = TensorBatch.from_numpy(SeqBatch(**replay.sample(tr.batch_size, tr.seq_len, np.random.default_rng(0))))
    post, _, _ = wm.observe(tb.obs, tb.action, tb.first)
traj = wm.imagine(post.map(lambda x: x.flatten(0, 1)), ac.policy, tr.horizon, tr.gamma)

n = traj.action.numel()  # H * N imagined states trained on
f, h, a = wm.feat_size, m.hidden, spec.n_actions


def dims(out: int) -> list[int]:
    """Layer widths of one MLP head."""
    return [f] + [h] * m.layers + [out]


def macs(widths: list[int], rows: int, backward: bool) -> int:
    """Multiply-adds of the forward pass over `rows` rows, plus the backward pass if asked."""
    fwd = sum(i * o for i, o in pairwise(widths)) * rows
    if not backward:
        return fwd
    input_grads = sum(i * o for i, o in pairwise(widths[1:])) * rows  # not for layer 1
    return 2 * fwd + input_grads


total = macs(dims(1), n + traj.action.shape[1], False)  # the critic's target pass over H+1 steps
total += tr.ppo_epochs * (macs(dims(a), n, True) + macs(dims(1), n, True))


def timed(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


upd = timed(lambda: ac.update(traj), 20)
x, w = torch.randn(n, f), torch.randn(f, h)
mm = timed(lambda: torch.mm(x, w), 200)
mm_rate = n * f * h / mm
print(f"preset {sys.argv[1] if len(sys.argv) > 1 else 'cpu'}: {n:,} imagined states, {tr.ppo_epochs} PPO epochs")
print(f"update: {upd * 1e3:.1f} ms for {total / 1e9:.2f} G multiply-adds = {2 * total / upd / 1e9:.0f} GFLOP/s")
print(f"torch.mm ({n} x {f}) @ ({f} x {h}) alone: {2 * mm_rate / 1e9:.0f} GFLOP/s")
print(f"matrix work at that rate: {total / mm_rate * 1e3:.1f} ms = {total / mm_rate / upd:.0%} of the update")
