"""The agent over the in-process transport: exact training counts, every sharing method end to
end, Algorithm 1 routing, save/load, and bad peer messages (tiny preset, CPU, one thread)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.agent import Agent
from agents.local import env_spec, make_agents, make_transports, play_episode, run_local
from agents.wire import ACTOR_UPDATES, WireError, acting_params
from comms.codec import encode
from comms.messages import ExperienceMsg, MetricsMsg, ParamsMsg, RolloutMsg
from comms.transport import InProcHub
from dwm_net.config import Config, load_config, replace
from dwm_net.envs import make_env
from dwm_net.learning.world_model import WorldModel

torch.set_num_threads(1)

TINY = load_config("tiny")
SCENARIO = "2s_vs_1sc"


def setup(cfg: Config, seed: int = 0) -> tuple[object, list[Agent], InProcHub, list]:
    env = make_env(SCENARIO, seed=seed)
    hub = InProcHub()
    transports = make_transports(cfg, env.get_env_info()["n_agents"], hub)
    return env, make_agents(cfg, env_spec(env), transports, seed), hub, transports


def exchange(agents: list[Agent], transports: list) -> None:
    for a in agents:
        a.share()
    for t in transports:
        t.pump()
    for a in agents:
        a.receive()


# --- exact counts -------------------------------------------------------------------------------

def test_training_counts_follow_the_schedule() -> None:
    cfg = replace(TINY, **{"train.train_every": 2, "train.prefill": 150, "train.wm_epochs": 2,
                           "train.ac_epochs": 3, "share.method": "independent"})
    env, agents, _, transports = setup(cfg)
    lengths = []
    for _ in range(5):
        lengths.append(play_episode(env, agents)[2])
        for a in agents:
            a.train_round()
        exchange(agents, transports)
    steps = np.cumsum(lengths)
    rounds = sum(1 for e, s in enumerate(steps, 1) if e % 2 == 0 and s >= 150)
    assert rounds >= 1
    for a in agents:
        m = a.metrics()
        assert m["env_steps"] == steps[-1] and m["episodes"] == 5 and m["replay_size"] == steps[-1]
        assert m["train_rounds"] == rounds
        assert m["wm_updates"] == 2 * rounds and m["ac_updates"] == 3 * rounds
        assert not any(k.startswith("shared/") for k in m)



def test_no_actor_critic_updates_before_warmup() -> None:
    """train.ac_warmup: rounds train the world model only (and offer no rollouts) until it has
    had that many updates; the actor's weights stay untouched until then."""
    cfg = replace(TINY, **{"train.prefill": 0, "train.wm_epochs": 2, "train.ac_epochs": 1,
                           "train.ac_warmup": 5, "share.method": "rollout"})
    env, agents, _, transports = setup(cfg)
    a = agents[0]
    actor0 = [p.detach().clone() for p in a.learner.ac.actor.parameters()]
    expected_ac = []
    for _ in range(4):
        play_episode(env, agents)
        metrics = a.train_round()
        # wm_updates after this round: 2, 4, 6, 8 -> actor-critic from the third round on
        expected_ac.append(any(k.startswith("ac/") for k in metrics))
        if a.learner.ac_updates == 0:
            assert a._new_rollouts is None
            assert all(torch.equal(p, q) for p, q in zip(actor0, a.learner.ac.actor.parameters()))
        for b in agents[1:]:
            b.train_round()
        exchange(agents, transports)
    assert expected_ac == [False, False, True, True]
    assert a.learner.wm_updates == 8 and a.learner.ac_updates == 2

def test_self_imitation_steps_follow_each_actor_critic_update_on_the_imagination_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """train.self_imitation > 0: every actor-critic update is followed by one self-imitation step
    on the own batch imagination started from (same windows, real actions); off, none is taken
    and no `sil_` metric appears."""
    cfg = replace(TINY, **{"train.prefill": 0, "train.ac_warmup": 0, "train.ac_epochs": 2,
                           "share.method": "independent"})

    def round_with(weight: float) -> tuple[list, list, set[str]]:
        env, agents, _, _ = setup(replace(cfg, **{"train.self_imitation": weight}))
        learner = agents[0].learner
        seen, starts = [], []
        imagine, self_imitate = learner.imagine, learner.self_imitate
        monkeypatch.setattr(learner, "imagine", lambda rng, s: (starts.append(s[0]), imagine(rng, s))[1])
        monkeypatch.setattr(learner, "self_imitate",
                            lambda batch, post: (seen.append(batch), self_imitate(batch, post))[1])
        play_episode(env, agents)
        metrics = agents[0].train_round()
        assert learner.ac_updates == 2
        return seen, starts, {k for k in metrics if k.startswith("ac/sil_")}

    seen, _, sil = round_with(0.0)
    assert seen == [] and sil == set()
    seen, starts, sil = round_with(0.5)
    assert seen == starts and len(seen) == 2
    assert sil == {"ac/sil_actor_loss", "ac/sil_critic_loss", "ac/sil_positive", "ac/sil_adv_max"}
    # The batches carry the episodes' returns-to-go (the learner's replay knows its gamma).
    assert all(b.ret is not None and b.ret.shape == b.reward.shape for b in seen)


def test_own_replay_knows_the_return_of_a_terminated_episode() -> None:
    cfg = replace(TINY, **{"share.method": "independent"})
    env, agents, _, _ = setup(cfg)
    play_episode(env, agents)
    replay = agents[0].learner.replay.state_dict()
    assert replay["term"][-1], "this seeded episode ends in a termination (not the time limit)"
    g, expected = cfg.train.gamma, []
    for r in replay["reward"][::-1]:
        expected.insert(0, r + g * (expected[0] if expected else 0.0))
    np.testing.assert_allclose(replay["ret"], expected, rtol=1e-5)


def test_a_stop_request_ends_the_round_between_whole_updates() -> None:
    """should_stop is asked before every update: True after the second ask means exactly one
    world-model update, no actor-critic update, and consistent counters."""
    cfg = replace(TINY, **{"train.prefill": 0, "train.wm_epochs": 3, "train.ac_epochs": 2,
                           "share.method": "independent"})
    env, agents, _, _ = setup(cfg)
    play_episode(env, agents)
    asked = []
    metrics = agents[0].train_round(should_stop=lambda: asked.append(1) or len(asked) > 1)
    learner = agents[0].learner
    assert (learner.wm_updates, learner.ac_updates, len(asked)) == (1, 0, 2)
    assert any(k.startswith("wm/") for k in metrics) and not any(k.startswith("ac/") for k in metrics)
    assert agents[0]._new_rollouts is None  # nothing imagined this round: nothing to share
    agents[1].train_round(should_stop=lambda: False)
    assert (agents[1].learner.wm_updates, agents[1].learner.ac_updates) == (3, 2)


# --- every method end to end --------------------------------------------------------------------

@pytest.mark.parametrize("method", ["independent", "centralized", "experience", "rollout", "both"])
def test_run_local_every_method(method: str) -> None:
    out = run_local(replace(TINY, **{"share.beta": 1.0}), steps=100, seed=0, method=method)
    assert out["method"] == method and out["env_steps"] >= 100 and out["episodes"] >= 1
    assert 0.0 <= out["win_rate"] <= 1.0 and np.isfinite(out["mean_return"])
    n = len(out["agents"])
    assert n == 2 and len(out["bytes_sent"]) == n
    for m in out["agents"]:
        assert m["env_steps"] == out["env_steps"] and m["episodes"] == out["episodes"]
        assert m["wm_updates"] == out["episodes"] * TINY.train.wm_epochs  # prefill < one episode
        assert np.isfinite(m["wm/loss"]) and np.isfinite(m["ac/critic_loss"])
        experience, rollouts = method in ("experience", "both"), method in ("rollout", "both")
        assert (m["shared_size"] > 0) == experience and (m.get("received/experience", 0) > 0) == experience
        assert (m["imagined_size"] > 0) == rollouts and (m.get("received/rollout", 0) > 0) == rollouts
    if method == "centralized":  # one learner: its replay holds every agent's steps
        assert out["agents"][0]["replay_size"] == n * out["env_steps"]
    assert (min(out["bytes_sent"]) > 0) == (method not in ("independent", "centralized"))


@pytest.mark.parametrize("method", ["experience", "rollout", "both"])
def test_beta_zero_shares_nothing(method: str) -> None:
    out = run_local(replace(TINY, **{"share.beta": 0.0}), steps=100, seed=1, method=method)
    assert out["bytes_sent"] == [0, 0]
    for m in out["agents"]:
        assert m["shared_size"] == 0 and m["imagined_size"] == 0
        assert not any(k.startswith(("shared/", "received/")) for k in m)


def test_shared_rollouts_enter_the_actor_critic_batch() -> None:
    cfg = replace(TINY, **{"share.beta": 1.0, "share.method": "rollout"})
    env, agents, _, transports = setup(cfg)
    for _ in range(2):
        play_episode(env, agents)
        for a in agents:
            a.train_round()
        exchange(agents, transports)
    n_own = cfg.train.batch_size * cfg.train.seq_len
    assert all(a.metrics()["ac/received_rollouts"] == n_own for a in agents)
    # Each received rollout is used once: the next round takes the last exchange's, the one
    # after it, with nothing new from the peer, none.
    for expected in (n_own, 0):
        play_episode(env, agents)
        agents[0].train_round()
        assert agents[0].metrics()["ac/received_rollouts"] == expected


def test_rollouts_are_scored_by_the_critic_before_it_trains_on_them() -> None:
    # The selection score is the critic's error on a rollout it has not yet been fitted to.
    cfg = replace(TINY, **{"train.prefill": 0, "train.ac_warmup": 0, "share.method": "rollout"})
    env, agents, _, _ = setup(cfg)
    play_episode(env, agents)
    learner = agents[0].learner
    before = copy.deepcopy(learner.ac)
    _, scored = learner.train_actor_critic(agents[0].rng, use_received=False)
    np.testing.assert_allclose(scored.critic_loss, before.critic_losses(scored.traj), rtol=1e-6)
    assert not np.allclose(scored.critic_loss, learner.ac.critic_losses(scored.traj))


def test_unlimited_budget_sends_a_burst_larger_than_the_queue() -> None:
    # beta = 1 offers B*T rollouts per update; the queue holds 4. Unlimited: none may be dropped.
    cfg = replace(TINY, **{"share.beta": 1.0, "share.method": "rollout", "comms.queue_size": 4})
    env, agents, _, transports = setup(cfg)
    play_episode(env, agents)
    for a in agents:
        a.train_round()
    exchange(agents, transports)
    n_own = cfg.train.batch_size * cfg.train.seq_len
    for a, t in zip(agents, transports):
        stats = t.stats()
        assert a.counters["shared/rollout"] == n_own
        assert sum(stats["dropped"].values()) == 0 and stats["sent"] >= n_own
    assert all(a.counters["received/rollout"] == n_own for a in agents)


def test_finite_budget_burst_waits_for_the_queue_to_choose() -> None:
    # Under a budget the whole burst must reach the queue before it drains (it keeps the best
    # scored items), so a burst larger than the queue drops the lowest instead of sending early.
    cfg = replace(TINY, **{"share.beta": 1.0, "share.method": "rollout", "comms.queue_size": 4,
                           "comms.budget": "1MB/s"})
    env, agents, _, transports = setup(cfg)
    play_episode(env, agents)
    for a in agents:
        a.train_round()
        a.share()
    n_own = cfg.train.batch_size * cfg.train.seq_len
    for t in transports:
        stats = t.stats()
        assert stats["sent"] == 0 and sum(stats["dropped"].values()) == n_own - 4


# --- Algorithm 1 routing ------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["experience", "independent"])
def test_world_model_batches_mark_peer_rows_not_own(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peer chunks (obs marked 7.0, never seen in own data) reach the world model only as rows
    with own=False, and only when the method shares experience."""
    cfg = replace(TINY, **{"share.method": method})
    env, agents, hub, _ = setup(cfg)
    play_episode(env, agents)
    me, d, a = agents[0], env_spec(env).obs_dim, env_spec(env).n_actions
    for seq in range(8):
        chunk = ExperienceMsg(sender=1, seq=seq, obs=np.full((8, d), 7.0, np.float32),
                              actions=np.zeros(8, np.uint8), rewards=np.zeros(8, np.float32),
                              terms=np.zeros(8, bool), avail=np.ones((8, a), bool), n_actions=a)
        hub.deliver(0, encode(chunk))
    me.receive()
    seen = []
    original = WorldModel.loss

    def spy(self: WorldModel, batch, own_mask=None):
        seen.append(batch)
        return original(self, batch, own_mask)

    monkeypatch.setattr(WorldModel, "loss", spy)
    assert me.train_round()
    assert len(seen) == cfg.train.wm_epochs
    for batch in seen:
        own = batch.own.numpy()
        from_peer = (batch.obs == 7.0).all(-1).all(-1).numpy()
        np.testing.assert_array_equal(own, ~from_peer)
        assert (~own).any() == (method == "experience")


# --- checkpoints --------------------------------------------------------------------------------

def test_save_load_acts_identically_and_keeps_counting(tmp_path: Path) -> None:
    # experience, not both: received rollouts are deliberately not checkpointed (a short FIFO),
    # and they would make the next actor-critic update differ.
    cfg = replace(TINY, **{"share.method": "experience", "share.beta": 0.5})
    env, agents, _, transports = setup(cfg)
    for _ in range(2):
        play_episode(env, agents)
        for a in agents:
            a.train_round()
        exchange(agents, transports)
    src = agents[0]
    assert src.metrics()["shared_size"] > 0
    src.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["agent.json", "learner.pt", "replay.npz", "shared.npz"]  # no temp files left
    dst = Agent(cfg, 0, env_spec(env), None, seed=12345, init_seed=999)
    dst.load(tmp_path)
    for mine, theirs in ((src.learner.wm, dst.learner.wm), (src.learner.ac, dst.learner.ac)):
        for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
            assert torch.equal(p, q), name
    assert dst.learner.ac.entropy_coef == src.learner.ac.entropy_coef
    assert dst.metrics() == {k: v for k, v in src.metrics().items() if not k.startswith(("ac/", "wm/"))}
    src.reset_episode()
    obs, avail = np.asarray(env.get_obs()), np.asarray(env.get_avail_actions(), bool)
    for step in range(5):
        torch.manual_seed(step)
        a1 = src.act(obs[0], avail[0])
        torch.manual_seed(step)
        assert dst.act(obs[0], avail[0]) == a1
    assert src.rng.random() == dst.rng.random()
    for a in (src, dst):
        a.reset_episode()
        a.record(obs[0], 0, 0.0, False, avail[0], first=True)
        a.end_episode()
    assert dst.metrics()["episodes"] == src.metrics()["episodes"] == 3
    assert dst.metrics()["env_steps"] == src.metrics()["env_steps"]
    # Same replay, optimizers and sampling RNG: the next training round is the same.
    torch.manual_seed(7)
    before = src.train_round()
    torch.manual_seed(7)
    assert dst.train_round() == before and before
    assert dst.metrics()["wm_updates"] == src.metrics()["wm_updates"]


# --- exploration noise --------------------------------------------------------------------------

def _actions(agent: Agent, obs: np.ndarray, avail: np.ndarray, n: int, greedy: bool = False) -> list[int]:
    torch.manual_seed(0)  # the policy's own sampling is the same in every call
    agent.reset_episode()
    return [agent.act(obs, avail, greedy) for _ in range(n)]


def test_greedy_acting_ignores_exploration_noise_and_noise_leaves_the_agent_rng_alone() -> None:
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs, avail = np.asarray(env.get_obs())[0], np.asarray(env.get_avail_actions(), bool)[0]
    plain = Agent(TINY, 0, env_spec(env), None, seed=3)
    noisy = Agent(replace(TINY, **{"train.explore_eps": 0.5, "train.explore_repeat": 0.5}), 0,
                  env_spec(env), None, seed=3)
    assert _actions(noisy, obs, avail, 30, greedy=True) == _actions(plain, obs, avail, 30, greedy=True)
    assert _actions(noisy, obs, avail, 200) != _actions(plain, obs, avail, 200)
    # Noise has its own stream: the replay-sampling RNG has drawn nothing in either agent.
    assert noisy.rng.random() == plain.rng.random()


def test_exploration_noise_takes_only_available_actions_uniformly() -> None:
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs = np.asarray(env.get_obs())[0]
    avail = np.zeros(env.get_env_info()["n_actions"], bool)
    avail[[1, 2, 4]] = True
    agent = Agent(replace(TINY, **{"train.explore_eps": 1.0}), 0, env_spec(env), None, seed=1)
    counts = np.bincount(_actions(agent, obs, avail, 3000), minlength=avail.size)
    assert counts[~avail].sum() == 0
    assert np.all(np.abs(counts[avail] / 3000 - 1 / 3) < 0.04), counts


def test_exploration_deviations_repeat_while_available() -> None:
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs = np.asarray(env.get_obs())[0]
    avail = np.ones(env.get_env_info()["n_actions"], bool)
    avail[0] = False  # no-op is for dead agents
    runs = {}
    for repeat in (0.0, 0.9):
        cfg = replace(TINY, **{"train.explore_eps": 1.0, "train.explore_repeat": repeat})
        acts = _actions(Agent(cfg, 0, env_spec(env), None, seed=2), obs, avail, 2000)
        runs[repeat] = np.mean(np.diff(acts) == 0)  # how often an action repeats the last one
    # Fresh uniform draws repeat with chance 1/6; repeated deviations 0.9 + 0.1/6.
    assert abs(runs[0.0] - 1 / 6) < 0.04 and abs(runs[0.9] - (0.9 + 0.1 / 6)) < 0.03, runs
    cfg = replace(TINY, **{"train.explore_eps": 1.0, "train.explore_repeat": 0.99})
    agent = Agent(cfg, 0, env_spec(env), None, seed=2)
    agent.reset_episode()
    first = agent.act(obs, avail)
    gone = avail.copy()
    gone[first] = False  # the repeated action becomes unavailable: never taken
    assert all(agent.act(obs, gone) != first for _ in range(50))


def test_exploration_episodes_noise_an_even_share_the_same_for_every_agent() -> None:
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs, avail = np.asarray(env.get_obs())[0], np.asarray(env.get_avail_actions(), bool)[0]
    cfg = replace(TINY, **{"train.explore_eps": 1.0, "train.explore_episodes": 0.3})
    noisy_by_agent = []
    for agent_id, seed in ((0, 5), (1, 6)):
        agent = Agent(cfg, agent_id, env_spec(env), None, seed=seed)
        noisy = []
        for _ in range(100):
            agent.reset_episode()
            before = agent.explore_rng.bit_generator.state
            for _ in range(3):
                agent.record(obs, agent.act(obs, avail), 0.0, False, avail, False)
            noisy.append(agent.explore_rng.bit_generator.state != before)  # drew noise
            agent.end_episode()
        noisy_by_agent.append(noisy)
    assert sum(noisy_by_agent[0]) == 30
    assert noisy_by_agent[0] == noisy_by_agent[1]  # no agent plays noisily alone
    # the schedule the env host writes into episodes.jsonl is the one they played
    assert noisy_by_agent[0] == [cfg.train.noisy_episode(k) for k in range(100)]
    assert max(map(len, "".join("n" if n else "." for n in noisy_by_agent[0]).split("n"))) <= 3


def spy_greedy(agent: Agent) -> list[bool]:
    """From now on, whether each of the agent's acting calls asked for the argmax."""
    asked: list[bool] = []
    policy = agent.learner.ac.acting_policy

    def spy(feat: torch.Tensor, avail: torch.Tensor, greedy: bool = False):
        asked.append(greedy)
        return policy(feat, avail, greedy)

    agent.learner.ac.acting_policy = spy
    return asked


def test_plain_greedy_episodes_act_greedily_once_the_actor_trains() -> None:
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs, avail = np.asarray(env.get_obs())[0], np.asarray(env.get_avail_actions(), bool)[0]
    cfg = replace(TINY, **{"train.explore_eps": 1.0, "train.explore_episodes": 0.5,
                           "train.plain_policy": "greedy"})
    agent = Agent(cfg, 0, env_spec(env), None, seed=3)
    asked = spy_greedy(agent)

    def episode() -> tuple[bool, bool]:  # (asked the policy for argmax, drew noise)
        agent.reset_episode()
        asked.clear()
        before = agent.explore_rng.bit_generator.state
        for _ in range(3):
            agent.record(obs, agent.act(obs, avail), 0.0, False, avail, False)
        agent.end_episode()
        assert len(set(asked)) == 1
        return asked[0], agent.explore_rng.bit_generator.state != before

    assert [episode() for _ in range(4)] == [(False, False), (False, True)] * 2  # untrained actor samples
    agent.learner.ac_updates = 1
    assert [episode() for _ in range(4)] == [(True, False), (False, True)] * 2
    # Evaluation is greedy and noise-free whatever the episode.
    asked.clear()
    agent.act(obs, avail, greedy=True)
    assert asked == [True]


def test_a_learner_fed_agent_acts_with_the_shipped_actor_and_knows_it_trained() -> None:
    """Centralized, as processes: the learner ships its (averaged) acting actor with its actor
    updates, so an agent's greedy plain episodes start when the learner's actor trains."""
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs, avail = np.asarray(env.get_obs())[0], np.asarray(env.get_avail_actions(), bool)[0]
    cfg = replace(TINY, **{"train.actor_ema": 0.5, "train.explore_eps": 1.0, "train.explore_episodes": 0.0,
                           "train.plain_policy": "greedy"})
    learner = Agent(cfg, 0, env_spec(env), None, seed=1)
    fed = Agent(cfg, 0, env_spec(env), None, seed=2, feed_learner=True)
    with torch.no_grad():
        for p in learner.learner.ac.actor_avg.parameters():
            p.add_(1.0)  # the average differs from the actor: the average is what must travel

    def params(updates: int, round_: int) -> ParamsMsg:
        arrays = acting_params(learner.learner.wm, learner.learner.ac.acting_actor, updates)
        return ParamsMsg(sender=9, seq=round_, step=0, arrays=arrays, update=round_)

    asked = spy_greedy(fed)
    assert fed._on_params(params(0, 1)) and fed.learner_actor_updates == 0
    shipped, loaded = learner.learner.ac.actor_avg.parameters(), fed.learner.ac.acting_actor.parameters()
    assert all(torch.equal(mine, theirs) for mine, theirs in zip(loaded, shipped))
    fed.reset_episode()
    fed.act(obs, avail)
    assert asked == [False]  # the learner's actor has not trained: plain episodes sample
    assert fed._on_params(params(4, 2)) and fed.learner_actor_updates == 4
    fed.act(obs, avail)
    assert asked == [False, True]
    bad = params(4, 3)
    for arrays in ({k: v for k, v in bad.arrays.items() if k != ACTOR_UPDATES},
                   {**bad.arrays, ACTOR_UPDATES: np.array([-1], np.int64)},
                   {**bad.arrays, ACTOR_UPDATES: np.array([1.5])}):
        with pytest.raises(WireError):
            fed._on_params(ParamsMsg(sender=9, seq=3, step=0, arrays=arrays, update=3))
    assert fed.params_update == 2 and fed.learner_actor_updates == 4  # nothing half-loaded


def test_exploration_rng_survives_a_checkpoint(tmp_path: Path) -> None:
    env = make_env(SCENARIO, seed=0)
    env.reset()
    obs, avail = np.asarray(env.get_obs())[0], np.asarray(env.get_avail_actions(), bool)[0]
    cfg = replace(TINY, **{"train.explore_eps": 0.5})
    src = Agent(cfg, 0, env_spec(env), None, seed=4)
    _actions(src, obs, avail, 17)
    src.save(tmp_path)
    dst = Agent(cfg, 0, env_spec(env), None, seed=99)
    dst.load(tmp_path)
    assert dst.explore_rng.random() == src.explore_rng.random()


# --- bad peer messages --------------------------------------------------------------------------

def test_agent_survives_malformed_and_misshaped_messages() -> None:
    cfg = replace(TINY, **{"share.method": "both"})
    env, agents, hub, transports = setup(cfg)
    me, spec = agents[0], env_spec(env)
    d, a, h = spec.obs_dim, spec.n_actions, cfg.train.horizon
    m = cfg.model

    def experience(obs_dim: int = d, n_actions: int = a) -> ExperienceMsg:
        return ExperienceMsg(sender=1, obs=np.zeros((4, obs_dim), np.float32), actions=np.zeros(4, np.uint8),
                             rewards=np.zeros(4, np.float32), terms=np.zeros(4, bool),
                             avail=np.ones((4, n_actions), bool), n_actions=n_actions)

    def rollout(rows: int = h, deter: int = m.deter) -> RolloutMsg:
        return RolloutMsg(sender=1, actions=np.zeros(rows, np.uint8), avail=np.ones((rows, a), bool),
                          logits=np.zeros((rows, a), np.float32), rewards=np.zeros(rows, np.float32),
                          discounts=np.full(rows, 0.9, np.float32),
                          h=np.zeros((rows + 1, deter), np.float32),
                          z=np.zeros((rows + 1, m.n_categoricals), np.uint8), n_actions=a)

    bad_z = rollout()
    object.__setattr__(bad_z, "z", np.full_like(bad_z.z, m.n_classes))  # class index out of range
    hub.deliver(0, [b"not a message"])
    bad = (experience(obs_dim=d + 1), experience(n_actions=a + 1), rollout(rows=h - 1),
           rollout(deter=m.deter + 3), bad_z, MetricsMsg(sender=1, values={"x": 1.0}))
    for msg in (*bad, experience(), rollout()):
        hub.deliver(0, encode(msg))
    assert me.receive() == 2  # the last two are fine
    counts = me.metrics()
    assert counts["rejected/shape"] == 3 and counts["rejected/spec"] == 1 and counts["rejected/range"] == 1
    assert counts["ignored/metrics"] == 1
    assert counts["received/experience"] == counts["received/rollout"] == 1
    assert transports[0].stats()["rejected"] == {"malformed": 1}
    assert counts["shared_size"] == 4 and counts["imagined_size"] == 1


def _episode(length: int, obs_dim: int, n_actions: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    term = np.zeros(length, bool)
    term[-1] = True
    return {"obs": rng.standard_normal((length, obs_dim)).astype(np.float32),
            "action": rng.integers(0, n_actions, length), "reward": rng.random(length).astype(np.float32),
            "term": term, "avail": np.ones((length, n_actions), bool)}


def test_the_centralized_learner_joins_each_senders_chunks_back_into_whole_episodes() -> None:
    # Stored chunk by chunk, a 50-step episode became three segments: the RSSM state reset at
    # steps 20 and 40 and the return-to-go was known only for the last 10 steps.
    from agents.wire import EpisodeJoiner, experience_from_msg, experience_msg
    from dwm_net.learning.replay import EpisodeReplay
    from dwm_net.learning.types import EnvSpec

    spec = EnvSpec(obs_dim=5, n_actions=4, n_agents=2, episode_limit=100)
    replay = EpisodeReplay(1000, spec.obs_dim, spec.n_actions, gamma=0.9)
    joiner = EpisodeJoiner(lambda chunk: replay.add_chunk(**chunk), max_steps=100)
    episodes = {sender: _episode(50, spec.obs_dim, spec.n_actions, sender) for sender in (0, 1)}

    def msgs(sender: int, skip: int | None = None) -> list[ExperienceMsg]:
        ep = episodes[sender]
        return [experience_msg({k: v[s:s + 20] for k, v in ep.items()}, sender=sender, seq=i, step=50,
                               score=0.0, float16=False, t0=s, ends=s + 20 >= 50)
                for i, s in enumerate(range(0, 50, 20)) if i != skip]

    zero, one = msgs(0), msgs(1)
    for msg in [zero[0], one[0], one[1], zero[1], zero[2], one[2]]:  # the senders interleave
        joiner.add(msg, experience_from_msg(msg, spec))
    assert joiner.held_steps == 0 and len(replay) == 100
    state = replay.state_dict()
    assert np.flatnonzero(state["first"]).tolist() == [0, 50]  # one segment per episode
    assert not np.isnan(state["ret"]).any()  # both ended in replay: every return-to-go known
    for seg, sender in ((0, 0), (50, 1)):  # in the order the episodes ended
        np.testing.assert_array_equal(state["action"][seg:seg + 50], episodes[sender]["action"])

    # A lost middle chunk: what came before is stored, the chunk after starts a new segment.
    lossy = EpisodeReplay(1000, spec.obs_dim, spec.n_actions, gamma=0.9)
    joiner = EpisodeJoiner(lambda chunk: lossy.add_chunk(**chunk), max_steps=100)
    for msg in msgs(0, skip=1):
        joiner.add(msg, experience_from_msg(msg, spec))
    assert len(lossy) == 30 and np.flatnonzero(lossy.state_dict()["first"]).tolist() == [0, 20]
    # An episode held in part is stored by flush (before a checkpoint).
    first_only = msgs(1)[0]
    joiner.add(first_only, experience_from_msg(first_only, spec))
    assert joiner.held_steps == 20 and len(lossy) == 30
    joiner.flush()
    assert joiner.held_steps == 0 and len(lossy) == 50
    # A sender that never says an episode ended cannot make it hold more than max_steps.
    capped = EpisodeReplay(1000, spec.obs_dim, spec.n_actions, gamma=0.9)
    joiner = EpisodeJoiner(lambda chunk: capped.add_chunk(**chunk), max_steps=40)
    for msg in msgs(0)[:2]:  # t0 0 and 20, neither ends
        joiner.add(msg, experience_from_msg(msg, spec))
    assert joiner.held_steps == 0 and len(capped) == 40


def test_every_own_imagination_batch_of_a_round_is_offered_to_the_rollout_gate() -> None:
    # Algorithm 2 adds every generated rollout to what may be shared: with ac_epochs batches a
    # round, offering only the last one shared about beta / ac_epochs of them.
    cfg = replace(TINY, **{"train.prefill": 0, "train.ac_warmup": 0, "train.ac_epochs": 3,
                           "share.method": "rollout"})
    env, agents, _, _ = setup(cfg)
    play_episode(env, agents)
    agents[0].train_round()
    t = cfg.train
    assert agents[0].learner.ac_updates == 3
    assert agents[0]._new_rollouts is not None
    assert agents[0]._new_rollouts.traj.action.shape == (t.horizon, 3 * t.batch_size * t.seq_len)
    assert agents[0]._new_rollouts.critic_loss.shape == (3 * t.batch_size * t.seq_len,)


def test_rollouts_queue_with_z_score_priorities_like_experience() -> None:
    # One send queue ranks every item: experience by its composite z-score, rollouts by their
    # critic loss as a z-score under the rollout gate's window (raw losses were compared before).
    cfg = replace(TINY, **{"train.prefill": 0, "train.ac_warmup": 0, "share.method": "rollout",
                           "share.beta": 1.0})
    env, agents, _, _ = setup(cfg)
    play_episode(env, agents)
    agents[0].train_round()
    rollouts = agents[0]._new_rollouts
    assert rollouts is not None
    losses = rollouts.critic_loss
    sent: list[float] = []
    agents[0]._send = lambda msg, score: sent.append(score)  # type: ignore[method-assign]
    agents[0].share()
    assert len(sent) == len(losses) >= 3
    assert sent[:2] == [0.0, 0.0]  # no spread in the gate's window yet
    k = len(losses) - 1
    before = np.asarray(losses[max(0, k - cfg.share.window):k], dtype=np.float64)  # the gate's window
    assert sent[k] == pytest.approx((float(losses[k]) - before.mean()) / before.std(), rel=1e-4)
