"""Probe: does torch.compile pay for the cpu-preset world-model update on this CPU?"""
import time
import numpy as np, torch
torch.set_num_threads(1)
from dwm_net.config import load_config
from dwm_net.envs import make_env
from dwm_net.learning.types import EnvSpec, SeqBatch
from dwm_net.learning.world_model import WorldModel, WorldModelLearner, TensorBatch
from dwm_net.learning.replay import EpisodeReplay
from dwm_net.learning.bench import _fill_replay

cfg = load_config("cpu"); m, tr = cfg.model, cfg.train
info = make_env("2s_vs_1sc").get_env_info()
spec = EnvSpec(obs_dim=info["obs_shape"], n_actions=info["n_actions"], n_agents=info["n_agents"], episode_limit=info["episode_limit"])
torch.manual_seed(0)
wm = WorldModel(spec, m); learner = WorldModelLearner(wm, tr)
replay = EpisodeReplay(tr.capacity, spec.obs_dim, spec.n_actions)
_fill_replay(replay, "2s_vs_1sc", 2000, 0)
rng = np.random.default_rng(0)
batches = [TensorBatch.from_numpy(SeqBatch(**replay.sample(tr.batch_size, tr.seq_len, rng))) for _ in range(8)]

def step(lossfn, b):
    total, _ = lossfn(b)
    learner.optim.zero_grad(set_to_none=True); total.backward()
    torch.nn.utils.clip_grad_norm_(wm.parameters(), 100.0); learner.optim.step()

def timeit(lossfn, n=40):
    t0 = time.perf_counter()
    for i in range(n): step(lossfn, batches[i % 8])
    return n / (time.perf_counter() - t0)

eager = wm.loss
t0 = time.perf_counter()
compiled = torch.compile(wm.loss)
step(compiled, batches[0]); 
print("compile+first step s", time.perf_counter() - t0, flush=True)
for _ in range(3):
    print("eager upd/s", timeit(eager), "compiled upd/s", timeit(compiled), flush=True)
