"""Probe: does torch.compile pay for the cpu-preset world-model update on this CPU?

    python docs/compile_probe.py loss   # compile the whole loss (wm.loss)
    python docs/compile_probe.py step   # compile only the RSSM posterior step

Prints the compile time, then world-model updates/s eager vs compiled in 40-update blocks.
"""
import sys
import time

import numpy as np
import torch

from dwm_net.config import load_config
from dwm_net.envs import make_env
from dwm_net.learning.bench import _fill_replay
from dwm_net.learning.replay import EpisodeReplay
from dwm_net.learning.types import EnvSpec, SeqBatch
from dwm_net.learning.world_model import TensorBatch, WorldModel, WorldModelLearner

torch.set_num_threads(1)
mode = sys.argv[1] if len(sys.argv) > 1 else "step"
cfg = load_config("cpu")
m, tr = cfg.model, cfg.train
info = make_env("2s_vs_1sc").get_env_info()
spec = EnvSpec(obs_dim=info["obs_shape"], n_actions=info["n_actions"], n_agents=info["n_agents"],
               episode_limit=info["episode_limit"])
torch.manual_seed(0)
wm = WorldModel(spec, m)
learner = WorldModelLearner(wm, tr)
replay = EpisodeReplay(tr.capacity, spec.obs_dim, spec.n_actions)
_fill_replay(replay, "2s_vs_1sc", 2000, 0)
rng = np.random.default_rng(0)
batches = [TensorBatch.from_numpy(SeqBatch(**replay.sample(tr.batch_size, tr.seq_len, rng)))
           for _ in range(8)]

eager = {"loss": wm.loss, "_recurrent": wm._recurrent, "_post_logits": wm._post_logits}
if mode == "loss":
    compiled = {"loss": torch.compile(wm.loss)}
else:
    compiled = {k: torch.compile(eager[k], dynamic=False) for k in ("_recurrent", "_post_logits")}


def use(fns: dict) -> None:
    for name, fn in fns.items():
        setattr(wm, name, fn)


def step(b: TensorBatch) -> None:
    total, _ = wm.loss(b)
    learner.optim.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(wm.parameters(), tr.grad_clip_wm)
    learner.optim.step()


def rate(n: int = 40) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        step(batches[i % len(batches)])
    return n / (time.perf_counter() - t0)


t0 = time.perf_counter()
use(compiled)
step(batches[0])
step(batches[1])
print(f"{mode}: compile + first steps {time.perf_counter() - t0:.1f} s", flush=True)
for _ in range(3):
    use(eager)
    e = rate()
    use(compiled)
    c = rate()
    print(f"eager {e:.2f} compiled {c:.2f} upd/s, ratio {c / e:.2f}", flush=True)
