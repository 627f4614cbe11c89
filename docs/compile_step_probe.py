"""Probe 2: compile only the RSSM posterior step (fixed shapes, no graph breaks)."""
import time, types
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

def step(b):
    total, _ = wm.loss(b)
    learner.optim.zero_grad(set_to_none=True); total.backward()
    torch.nn.utils.clip_grad_norm_(wm.parameters(), 100.0); learner.optim.step()

def timeit(n=40):
    t0 = time.perf_counter()
    for i in range(n): step(batches[i % 8])
    return n / (time.perf_counter() - t0)

eager_rec, eager_post = wm._recurrent, wm._post_logits
c_rec, c_post = torch.compile(eager_rec, dynamic=False), torch.compile(eager_post, dynamic=False)
def use(compiled):
    wm._recurrent, wm._post_logits = (c_rec, c_post) if compiled else (eager_rec, eager_post)
t0 = time.perf_counter(); use(True); step(batches[0]); step(batches[1])
print("compile s", time.perf_counter() - t0, flush=True)
for _ in range(3):
    use(False); e = timeit(); use(True); c = timeit()
    print(f"eager {e:.2f} compiled {c:.2f} ratio {c/e:.2f}", flush=True)
