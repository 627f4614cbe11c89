"""Learning-core throughput of one agent process with one torch thread.

What an agent process spends its CPU on, measured separately: world-model gradient steps,
actor-critic updates on imagined rollouts, and acting (one posterior step plus the policy per env
step). Peak RSS is the whole process's, so it includes the replay buffer and the interpreter.
"""

from __future__ import annotations

import dataclasses
import platform
import resource
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from dwm_net.config import load_config
from dwm_net.envs import make_env
from dwm_net.envs.bench import machine_info
from dwm_net.envs.policies import random_actions
from dwm_net.learning.actor_critic import ActorCritic, self_imitate_real
from dwm_net.learning.nets import low_precision
from dwm_net.learning.replay import EpisodeReplay
from dwm_net.learning.types import EnvSpec, Latent, SeqBatch
from dwm_net.learning.world_model import TensorBatch, WorldModel, WorldModelLearner


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if platform.system() == "Darwin" else 2**10)


def _timed(step: Callable[[], None], seconds: float) -> dict[str, float]:
    """Run ``step`` once untimed (allocator and autograd warm-up), then for about ``seconds``;
    at least one timed iteration, so a slow step still gets a rate."""
    step()
    n = 0
    t0 = time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return {"iterations": n, "seconds": dt, "per_s": n / dt}


def _fill_replay(replay: EpisodeReplay, scenario: str, min_steps: int, seed: int) -> int:
    """Agent 0's transitions from whole random-policy episodes until at least ``min_steps``;
    returns the episodes played."""
    env = make_env(scenario, seed=seed)
    rng = np.random.default_rng(seed)
    episodes = 0
    while len(replay) < min_steps:
        env.reset()
        first, terminated = True, False
        while not terminated:
            obs, avail = env.obs_array[0].copy(), env.avail_array[0].astype(bool)
            actions = random_actions(rng, env.avail_array)
            reward, terminated, info = env.step(actions)
            # A time-limit end is not a termination: the world model must not learn it as one.
            term = terminated and not info.get("episode_limit", False)
            replay.add(obs, int(actions[0]), reward, term, avail, first)
            first = False
        episodes += 1
    return episodes


def bench_train(preset: str, scenario: str = "2s_vs_1sc", seconds: float = 10.0,
                seed: int = 0, sets: Sequence[str] = ()) -> dict:
    """World-model updates/s, actor-critic updates/s (and imagined states/s), self-imitation
    steps/s and acting steps/s for ``preset``'s sizes on ``scenario``, each timed for about
    ``seconds / 4``; ``sets`` are ``key.path=value`` overrides on the preset.

    Raises :class:`~dwm_net.config.ConfigError` for an unknown preset or a bad override.
    """
    cfg = load_config(preset, overrides=sets)
    m, tr = cfg.model, cfg.train
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # an agent process runs one torch thread; several share the cores
    try:
        torch.manual_seed(seed)
        info = make_env(scenario).get_env_info()
        spec = EnvSpec(obs_dim=info["obs_shape"], n_actions=info["n_actions"],
                       n_agents=info["n_agents"], episode_limit=info["episode_limit"])
        wm = WorldModel(spec, m)
        learner = WorldModelLearner(wm, tr)
        # The self-imitation weight only scales that step's loss: timed at the preset's weight, or
        # at 1 where the preset has it off, so its cost is known before one turns it on.
        ac = ActorCritic(spec, wm.feat_size, m, dataclasses.replace(tr, self_imitation=tr.self_imitation or 1.0))
        replay = EpisodeReplay(tr.capacity, spec.obs_dim, spec.n_actions, gamma=tr.gamma)
        # Enough distinct steps that batch x seq_len windows are not all the same few.
        episodes = _fill_replay(replay, scenario, max(tr.batch_size * tr.seq_len, tr.prefill), seed)
        rng = np.random.default_rng(seed)
        per_phase = seconds / 4

        def sample() -> SeqBatch:
            return SeqBatch(**replay.sample(tr.batch_size, tr.seq_len, rng))

        def wm_step() -> None:
            learner.update(sample())

        @torch.no_grad()
        def starts() -> tuple[TensorBatch, Latent]:
            # As a training round does: a fresh batch and its posterior states (B, T, ...).
            tb = TensorBatch.from_numpy(sample())
            post, _, _ = wm.observe(tb.obs, tb.action, tb.first)
            return tb, post

        def ac_step() -> None:
            _, post = starts()
            start = post.map(lambda x: x.flatten(0, 1))  # (B*T, ...)
            ac.update(wm.imagine(start, ac.policy, tr.horizon, tr.gamma))

        sil_positive: list[float] = []

        def sil_step() -> None:
            # As a training round does after an update. A step is skipped where no return beats
            # the critic; the fraction that did is reported with the rate.
            sil_positive.append(self_imitate_real(ac, wm, *starts())["positive"])

        # Acting replays stored observations in order, converting from numpy each step as the
        # agent does with what the env hands it.
        n_act = min(len(replay), 1024)
        act_obs, act_avail = replay.obs[:n_act], np.unpackbits(
            replay.avail[:n_act], axis=-1, count=spec.n_actions).astype(bool)
        act_first = replay.first[:n_act]
        state = {"i": 0, "latent": wm.initial(1), "action": torch.zeros(1, dtype=torch.int64)}

        def act_step() -> None:
            i = state["i"] % n_act
            latent = wm.act_step(state["latent"], state["action"], torch.as_tensor(act_obs[i])[None],
                                 torch.as_tensor(act_first[i : i + 1]))
            action, _ = ac.policy(latent.feat(), torch.as_tensor(act_avail[i])[None])
            state.update(i=i + 1, latent=latent, action=action)

        wm_t = _timed(wm_step, per_phase)
        ac_t = _timed(ac_step, per_phase)
        sil_t = _timed(sil_step, per_phase)
        act_t = _timed(act_step, per_phase)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)

    states_per_update = tr.batch_size * tr.seq_len * tr.horizon
    return {
        "preset": cfg.preset,
        "set": list(sets),
        # What model.precision resolved to here: "auto" depends on the CPU.
        "precision": {"config": m.precision, "bf16_products": low_precision(m.precision)},
        "scenario": scenario,
        "seed": seed,
        "seconds": seconds,
        "wm_updates_per_s": wm_t["per_s"],
        "ac_updates_per_s": ac_t["per_s"],
        "imagined_states_per_s": ac_t["per_s"] * states_per_update,
        "sil_steps_per_s": sil_t["per_s"],
        # Timed steps (not the warm-up call) with some positive advantage; the rest skip the
        # backward passes, so a lower fraction is a faster rate.
        "sil_stepped_fraction": float(np.mean([p > 0 for p in sil_positive[1:]])),
        "act_steps_per_s": act_t["per_s"],
        # One training round is wm_epochs world-model steps plus ac_epochs actor-critic updates,
        # each followed by a self-imitation step where the preset turns it on.
        "train_round_s": tr.wm_epochs / wm_t["per_s"] + tr.ac_epochs / ac_t["per_s"]
        + (tr.ac_epochs / sil_t["per_s"] if tr.self_imitation else 0.0),
        "peak_rss_mib": peak_rss_mib(),
        "params": {"world_model": sum(p.numel() for p in wm.parameters()),
                   "actor": sum(p.numel() for p in ac.actor.parameters()),
                   "critic": sum(p.numel() for p in ac.critic.parameters())},
        "sizes": {"hidden": m.hidden, "layers": m.layers, "deter": m.deter, "embed": m.embed,
                  "latents": [m.n_categoricals, m.n_classes], "batch_size": tr.batch_size,
                  "seq_len": tr.seq_len, "horizon": tr.horizon, "ppo_epochs": tr.ppo_epochs,
                  "wm_epochs": tr.wm_epochs, "ac_epochs": tr.ac_epochs},
        "env": {"obs_dim": spec.obs_dim, "n_actions": spec.n_actions},
        "replay": {"transitions": len(replay), "episodes": episodes},
        "timing": {"wm": wm_t, "ac": ac_t, "sil": sil_t, "act": act_t},
        "torch_threads": used_threads,
        "torch": torch.__version__,
        "machine": machine_info(),
    }


__all__ = ["bench_train", "peak_rss_mib"]
