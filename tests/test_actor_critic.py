"""Actor-critic in imagination: shapes, lambda-returns, masking, off-policy (peer) PPO ratio,
entropy decay, learning a toy MDP with a known optimum, selection scores, checkpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from dwm_net.config import load_config, replace
from dwm_net.learning.actor_critic import (
    ENTROPY_BOUNDS,
    ENTROPY_RATE,
    MASKED_LOGIT,
    ActorCritic,
    discount_weights,
    lambda_returns,
    log_prob,
    masked_logits,
    normalised_entropy,
    real_returns,
)
from dwm_net.learning.types import EnvSpec, Trajectory

torch.set_num_threads(1)

R, C, K = 6, 2, 3  # toy latent: deter size, categoricals, classes
FEAT = R + C * K
METRICS = {"actor_loss", "critic_loss", "entropy", "entropy_coef", "value_mean", "return_mean",
           "adv_std", "return_scale"}


def make_ac(n_actions: int, seed: int = 0, feat_dim: int = FEAT, **changes: object) -> ActorCritic:
    cfg = load_config("tiny")
    if changes:
        cfg = replace(cfg, **changes)
    torch.manual_seed(seed)
    return ActorCritic(EnvSpec(obs_dim=5, n_actions=n_actions, n_agents=2, episode_limit=50),
                       feat_dim, cfg.model, cfg.train)


def random_avail(*shape: int, n_actions: int, g: torch.Generator) -> torch.Tensor:
    """(..., A) bool with at least one available action per row."""
    avail = torch.rand(*shape, n_actions, generator=g) < 0.5
    first = torch.randint(n_actions, shape, generator=g)
    return avail | torch.nn.functional.one_hot(first, n_actions).bool()


def random_traj(actor: ActorCritic, H: int, B: int, seed: int = 0) -> Trajectory:
    """An imagined-looking rollout whose actions and logits come from `actor`'s policy."""
    g = torch.Generator().manual_seed(seed)
    A = actor.actor[-1].out_features
    deter = torch.randn(H + 1, B, R, generator=g)
    stoch = torch.nn.functional.one_hot(torch.randint(K, (H + 1, B, C), generator=g), K).float()
    avail = random_avail(H, B, n_actions=A, g=g)
    feat = torch.cat([deter, stoch.flatten(-2)], -1)
    action, logits = actor.policy(feat[:-1].flatten(0, 1), avail.flatten(0, 1))
    return Trajectory(deter=deter, stoch=stoch, action=action.view(H, B), logits=logits.view(H, B, A),
                      avail=avail, reward=torch.randn(H, B, generator=g),
                      discount=0.99 * (torch.rand(H, B, generator=g) > 0.1).float())


# ---------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("H", [1, 4])
@pytest.mark.parametrize("B", [1, 6])
@pytest.mark.parametrize("A", [7, 11])
def test_shapes(H: int, B: int, A: int) -> None:
    ac = make_ac(A)
    traj = random_traj(ac, H, B)
    assert traj.action.dtype == torch.int64 and traj.logits.shape == (H, B, A)
    action, logits = ac.policy(torch.randn(B, FEAT), torch.ones(B, A, dtype=torch.bool), greedy=True)
    assert action.shape == (B,) and action.dtype == torch.int64 and logits.shape == (B, A)
    assert lambda_returns(traj.reward, torch.zeros(H + 1, B), traj.discount, 0.95).shape == (H, B)
    assert discount_weights(traj.discount).shape == (H, B)
    assert ac.ratio(traj).shape == (H, B)
    scores = ac.critic_losses(traj)
    assert isinstance(scores, np.ndarray) and scores.shape == (B,) and np.all(scores >= 0)
    metrics = ac.update(traj)
    assert set(metrics) == METRICS
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())


# ---------------------------------------------------------------------------------------------
# Lambda-returns and loss weights


def test_lambda_returns_hand_computed() -> None:
    r = torch.tensor([[1.0], [2.0], [3.0]])  # (H=3, B=1)
    v = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # (H+1, B)
    d = torch.tensor([[0.9], [0.5], [0.8]])
    # lam = 0: one-step TD targets r_t + d_t v_{t+1}.
    td = [1 + 0.9 * 20, 2 + 0.5 * 30, 3 + 0.8 * 40]
    torch.testing.assert_close(lambda_returns(r, v, d, 0.0), torch.tensor(td).unsqueeze(1))
    # lam = 1: discounted Monte Carlo return bootstrapped from v_H.
    g2 = 3 + 0.8 * 40
    g1 = 2 + 0.5 * g2
    g0 = 1 + 0.9 * g1
    torch.testing.assert_close(lambda_returns(r, v, d, 1.0), torch.tensor([[g0], [g1], [g2]]))
    # lam = 0.5 mixes the two at every step.
    m2 = 3 + 0.8 * 40
    m1 = 2 + 0.5 * (0.5 * 30 + 0.5 * m2)
    m0 = 1 + 0.9 * (0.5 * 20 + 0.5 * m1)
    torch.testing.assert_close(lambda_returns(r, v, d, 0.5), torch.tensor([[m0], [m1], [m2]]))


def test_discount_weights_are_cumulative_products_before_t() -> None:
    d = torch.tensor([[0.9, 0.5], [0.8, 0.0], [0.7, 1.0]], requires_grad=True)
    w = discount_weights(d)
    assert not w.requires_grad
    torch.testing.assert_close(w, torch.tensor([[1.0, 1.0], [0.9, 0.5], [0.72, 0.0]]))


# ---------------------------------------------------------------------------------------------
# Masking


def test_policy_never_samples_unavailable_actions() -> None:
    A, N = 7, 4000
    ac = make_ac(A)
    g = torch.Generator().manual_seed(3)
    avail = random_avail(N, n_actions=A, g=g)
    feat = 3 * torch.randn(N, FEAT, generator=g)  # large features -> peaked, varied logits
    for _ in range(5):
        action, logits = ac.policy(feat, avail)
        assert avail.gather(1, action[:, None]).all()
    assert (logits[~avail] == MASKED_LOGIT).all()
    assert torch.equal(logits[avail], ac.actor(feat).detach()[avail])
    greedy, _ = ac.policy(feat, avail, greedy=True)
    expected = ac.actor(feat).detach().masked_fill(~avail, float("-inf")).argmax(-1)
    assert torch.equal(greedy, expected)


def test_masked_logits_tolerates_minus_inf_and_keeps_entropy_finite() -> None:
    logits = torch.tensor([[0.0, float("-inf"), 1.0]])
    avail = torch.tensor([[True, False, True]])
    logp = torch.log_softmax(masked_logits(logits, avail), -1)
    assert torch.isfinite(-(logp.exp() * logp).sum())


# ---------------------------------------------------------------------------------------------
# Off-policy PPO on a peer's rollout (Algorithm 2)


def test_ratio_uses_stored_peer_logits() -> None:
    A, H, B = 7, 4, 6
    ac, peer = make_ac(A, seed=0, **{"train.ppo_epochs": 1, "train.adv_norm": "std"}), make_ac(A, seed=1)
    traj = random_traj(peer, H, B)

    def probs(logits: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits.masked_fill(~traj.avail, float("-inf")), -1)
        return p.gather(-1, traj.action[..., None]).squeeze(-1)

    own_logits = ac.actor(traj.feat()[:-1]).detach()
    ratio = ac.ratio(traj).detach()
    torch.testing.assert_close(ratio, probs(own_logits) / probs(traj.logits))
    assert (ratio - 1).abs().max() > 0.05  # a different actor really gives a different ratio
    # The peer's own ratio on its own rollout is exactly 1.
    torch.testing.assert_close(peer.ratio(traj).detach(), torch.ones(H, B))

    # The first (here: only) PPO pass of `update` uses that ratio: rebuild its actor loss by hand.
    with torch.no_grad():
        feat = traj.feat()
        value = ac.value(feat)
        returns = lambda_returns(traj.reward, value, traj.discount, ac.cfg.lam)
        adv = returns - value[:-1]
        adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
        eps = ac.cfg.ppo_clip
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)
        logp = torch.log_softmax(masked_logits(own_logits, traj.avail), -1)
        entropy = -(logp.exp() * logp).sum(-1)
        expected = -(discount_weights(traj.discount) * (surrogate + ac.entropy_coef * entropy)).mean()
    before = [p.clone() for p in ac.actor.parameters()]
    metrics = ac.update(traj)
    assert metrics["actor_loss"] == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(before, ac.actor.parameters()))
    # The behaviour logits were the peer's, so the ratio after the step moved away from the old one.
    assert not torch.allclose(ac.ratio(traj).detach(), ratio)


def test_actor_average_acts_and_follows_each_actor_step() -> None:
    """With train.actor_ema = d, acting uses avg <- d avg + (1 - d) actor after each PPO step;
    imagination (`policy`) keeps using the trained actor; off, both are the actor."""
    plain = make_ac(5, 1)
    assert plain.actor_avg is None and plain.acting_actor is plain.actor
    ac = make_ac(5, 1, **{"train.actor_ema": 0.9, "train.ppo_epochs": 3})
    traj = random_traj(ac, 4, 6)
    expected = [p.clone() for p in ac.actor.parameters()]  # the average starts as the actor
    assert all(torch.equal(a, e) for a, e in zip(ac.actor_avg.parameters(), expected))
    steps = []
    step = ac.actor_opt.step

    def recorded_step(*args, **kwargs):  # the actor's weights after every PPO step
        out = step(*args, **kwargs)
        steps.append([p.detach().clone() for p in ac.actor.parameters()])
        return out

    ac.actor_opt.step = recorded_step
    ac.update(traj)
    assert len(steps) == 3
    for after in steps:
        expected = [0.9 * e + 0.1 * a for e, a in zip(expected, after)]
    for avg, e, a in zip(ac.actor_avg.parameters(), expected, ac.actor.parameters()):
        assert torch.allclose(avg, e, atol=1e-6) and not torch.equal(avg, a)
    feat, avail = traj.feat()[0], traj.avail[0]
    _, acting = ac.acting_policy(feat, avail)
    _, imagining = ac.policy(feat, avail)
    assert torch.allclose(acting[avail], ac.actor_avg(feat)[avail])
    assert torch.allclose(imagining[avail], ac.actor(feat).detach()[avail])
    # The average is checkpointed with the rest.
    buf = io.BytesIO()
    torch.save(ac.state_dict(), buf)
    buf.seek(0)
    other = make_ac(5, 2, **{"train.actor_ema": 0.9})
    other.load_state_dict(torch.load(buf))
    assert all(torch.equal(a, b) for a, b in zip(other.actor_avg.parameters(), ac.actor_avg.parameters()))


def test_real_returns_hand_computed() -> None:
    """G_t = r_t + g (1 - term_t) G_{t+1} inside an episode; at the window's last step and
    before a `first` (a cut, not an ending) the successor's value stands in for G_{t+1}."""
    g = 0.5
    reward = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    term = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    first = torch.tensor([[False, False, True, False]])
    succ_value = torch.tensor([[100.0, 200.0, 300.0, 10.0]])
    got = real_returns(reward, term, first, succ_value, g)
    g3 = 4 + g * 10  # last step: bootstrapped with V(successor) = 10
    g2 = 3 + g * g3
    g1 = 2.0  # terminal: nothing after it (the next step starts a new episode anyway)
    g0 = 1 + g * g1
    assert torch.allclose(got, torch.tensor([[g0, g1, g2, g3]]))
    # A cut without termination (time limit, or a chunk boundary) bootstraps at the cut.
    cut = real_returns(reward, torch.zeros_like(term), first, succ_value, g)
    assert torch.allclose(cut[0, 1], torch.tensor(2 + g * 200.0))


def sil_batch(ac: ActorCritic, B: int = 3, T: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    A = ac.actor[-1].out_features
    avail = random_avail(B, T, n_actions=A, g=g)
    action = torch.multinomial(avail.flatten(0, 1).float(), 1, generator=g).view(B, T)
    return {"feat": torch.randn(B, T, FEAT, generator=g), "succ": torch.randn(B, T, FEAT, generator=g),
            "action": action, "reward": torch.zeros(B, T), "term": torch.zeros(B, T),
            "first": torch.zeros(B, T, dtype=torch.bool), "avail": avail}


def test_self_imitation_raises_the_taken_action_only_where_the_return_beat_the_critic() -> None:
    """Where the real return exceeds V(s) the actor's log-prob of the taken action goes up and
    the critic's value toward the return; where it does not, neither network changes (not even
    by the momentum PPO's steps left in Adam)."""
    changes = {"train.self_imitation": 1.0, "train.lr_actor": 1e-2, "train.lr_critic": 1e-2}
    for seed in range(3):
        ac = make_ac(5, seed, **changes)
        b = sil_batch(ac, seed=seed)
        zero_critic(ac)  # V = 0 everywhere
        b["reward"][0, -1] = 5.0  # one rewarding step: positive advantages on row 0 only
        logp0 = log_probs(ac, b)
        m = ac.self_imitate(**b)
        assert 0.0 < m["positive"] < 1.0 and m["adv_max"] > 0.0
        assert log_probs(ac, b)[0].mean() > logp0[0].mean()
        assert ac.value(b["feat"][0]).mean() > 0.0

    ac.update(random_traj(ac, 4, 6))  # Adam now has momentum that a zero-gradient step would apply
    zero_critic(ac)
    before = [p.detach().clone() for p in (*ac.actor.parameters(), *ac.critic.parameters())]
    b["reward"].fill_(-1.0)  # every return below V = 0: no advantage, no step
    m = ac.self_imitate(**b)
    assert m["positive"] == 0.0 and m["actor_loss"] == 0.0
    after = [p.detach() for p in (*ac.actor.parameters(), *ac.critic.parameters())]
    assert all(torch.equal(x, y) for x, y in zip(before, after))


def test_self_imitation_takes_the_episode_return_where_replay_knows_it() -> None:
    """With `ret` (the episode's return-to-go) a step whose window holds no reward still
    imitates when its episode's return beats the critic; NaN entries fall back to the window."""
    changes = {"train.self_imitation": 1.0, "train.lr_actor": 1e-2, "train.lr_critic": 1e-2}
    ac = make_ac(5, 0, **changes)
    b = sil_batch(ac)
    zero_critic(ac)
    b["succ"].zero_()  # the window's bootstrap V(successor) = 0 too: no reward in sight
    assert ac.self_imitate(**b)["positive"] == 0.0  # the window alone: nothing to imitate
    ret = torch.full((3, 5), float("nan"))
    ret[1] = 8.0  # row 1's episode was won after the window
    logp0 = log_probs(ac, b)
    m = ac.self_imitate(**b, ret=ret)
    assert m["positive"] == pytest.approx(1 / 3) and m["adv_max"] == pytest.approx(8.0)
    assert log_probs(ac, b)[1].mean() > logp0[1].mean()
    assert ac.value(b["feat"][1]).mean() > 0.0  # pulled up from V = 0 toward the return


def zero_critic(ac: ActorCritic) -> None:
    with torch.no_grad():
        ac.critic[-1].weight.zero_()
        ac.critic[-1].bias.zero_()


def log_probs(ac: ActorCritic, b: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return log_prob(ac.actor(b["feat"]), b["avail"], b["action"])


def test_entropy_coefficient_decays_once_per_actor_step() -> None:
    ac = make_ac(5, **{"train.entropy": 0.5, "train.entropy_decay": 0.9, "train.ppo_epochs": 3})
    traj = random_traj(ac, 3, 4)
    expected = 0.5
    for _ in range(4):
        metrics = ac.update(traj)
        for _ in range(3):  # one actor gradient step per PPO pass
            expected *= 0.9
        assert ac.entropy_coef == expected and metrics["entropy_coef"] == expected


def test_normalised_entropy_is_one_for_uniform_and_zero_for_deterministic() -> None:
    avail = torch.tensor([[True, True, True, False], [True, True, False, False], [True, False, False, False]])
    uniform = torch.log(avail.sum(-1).float())  # H of the uniform policy over the available actions
    assert normalised_entropy(uniform, avail) == pytest.approx(1.0)  # the 1-choice row is left out
    assert normalised_entropy(torch.zeros(3), avail) == 0.0
    assert normalised_entropy(torch.zeros(1), avail[2:]) == 1.0  # no state with a choice


def test_entropy_target_raises_the_coefficient_of_a_collapsed_policy_and_lowers_it_when_above() -> None:
    ac = make_ac(5, **{"train.entropy": 0.01, "train.entropy_target": 0.5, "train.ppo_epochs": 1})
    traj = random_traj(ac, 3, 8)
    with torch.no_grad():  # a near-deterministic actor: normalised entropy ~0, far below 0.5
        ac.actor[-1].bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0, 0.0]))
        ac.actor[-1].weight.zero_()
    traj = Trajectory(**{**traj.__dict__, "avail": torch.ones_like(traj.avail)})
    before = ac.entropy_coef
    ac.update(traj)
    assert ac.entropy_coef == pytest.approx(before * np.exp(ENTROPY_RATE * 1.0), rel=1e-3)  # shortfall 1
    with torch.no_grad():  # uniform actor: normalised entropy 1, above the 0.5 target
        ac.actor[-1].bias.zero_()
    before = ac.entropy_coef
    ac.update(traj)
    assert ac.entropy_coef == pytest.approx(before * np.exp(ENTROPY_RATE * (0.5 - 1.0) / 0.5), rel=1e-2)


def test_entropy_target_keeps_the_coefficient_within_its_bounds() -> None:
    ac = make_ac(5, **{"train.entropy": 0.5, "train.entropy_target": 0.5, "train.ppo_epochs": 1})
    traj = random_traj(ac, 3, 8)
    traj = Trajectory(**{**traj.__dict__, "avail": torch.ones_like(traj.avail)})
    with torch.no_grad():  # collapsed actor: the coefficient climbs to the cap and stays there
        ac.actor[-1].bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0, 0.0]))
        ac.actor[-1].weight.zero_()
    for _ in range(50):
        ac.update(traj)
    assert ac.entropy_coef == ENTROPY_BOUNDS[1]
    low = make_ac(5, **{"train.entropy": 1e-4, "train.entropy_target": 0.01, "train.ppo_epochs": 1})
    for _ in range(10):  # near-uniform actor, far above a target of 0.01: down to the floor
        low.update(traj)
    assert low.entropy_coef == ENTROPY_BOUNDS[0]


# ---------------------------------------------------------------------------------------------
# Learning a toy MDP with a known optimum


class ToyMDP:
    """S states with fixed random latent features; each state rewards one available action
    (reward in [0.5, 1]); after action a the next state is nxt[s, a] with probability 1/2, else
    uniform. Constant discount GAMMA. Q* by value iteration; V^pi exactly by a linear solve."""

    S, A, GAMMA, DETER = 20, 7, 0.9, 16
    FEAT = DETER + C * K

    def __init__(self, seed: int) -> None:
        S, A = self.S, self.A
        g = torch.Generator().manual_seed(seed)
        self.deter = torch.randn(S, self.DETER, generator=g)
        self.stoch = torch.nn.functional.one_hot(torch.randint(K, (S, C), generator=g), K).float()
        self.avail = random_avail(S, n_actions=A, g=g)
        rewarded = torch.multinomial(self.avail.float(), 1, generator=g).squeeze(-1)
        self.rew = torch.zeros(S, A)
        self.rew[torch.arange(S), rewarded] = 0.5 + 0.5 * torch.rand(S, generator=g)
        self.nxt = torch.randint(S, (S, A), generator=g)
        v = torch.zeros(S)
        for _ in range(300):
            q = (self.rew + self.GAMMA * (0.5 * v[self.nxt] + 0.5 * v.mean())).masked_fill(
                ~self.avail, float("-inf"))
            v = q.max(-1).values
        self.best, self.v_star = q.argmax(-1), v
        top2 = q.topk(2, -1).values
        self.gap = torch.where(self.avail.sum(-1) > 1, top2[:, 0] - top2[:, 1], torch.inf).min()

    def feat(self, s: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.deter[s], self.stoch[s].flatten(-2)], -1)

    def rollout(self, ac: ActorCritic, H: int, B: int, g: torch.Generator) -> Trajectory:
        s = torch.randint(self.S, (B,), generator=g)
        states, actions, logits, rewards = [s], [], [], []
        for _ in range(H):
            a, lg = ac.policy(self.feat(s), self.avail[s])
            actions.append(a), logits.append(lg), rewards.append(self.rew[s, a])
            jump = torch.randint(self.S, (B,), generator=g)
            s = torch.where(torch.rand(B, generator=g) < 0.5, self.nxt[s, a], jump)
            states.append(s)
        st = torch.stack(states)
        return Trajectory(deter=self.deter[st], stoch=self.stoch[st], action=torch.stack(actions),
                          logits=torch.stack(logits), avail=self.avail[st[:-1]],
                          reward=torch.stack(rewards), discount=torch.full((H, B), self.GAMMA))

    def v_pi(self, ac: ActorCritic) -> torch.Tensor:
        """(S,) exact value of ac's stochastic policy."""
        S, A = self.S, self.A
        with torch.no_grad():
            p = torch.softmax(masked_logits(ac.actor(self.feat(torch.arange(S))), self.avail), -1)
        P = torch.full((S, S), 0.5 / S)
        P.index_put_((torch.arange(S)[:, None].expand(S, A), self.nxt), 0.5 * p, accumulate=True)
        return torch.linalg.solve(torch.eye(S) - self.GAMMA * P, (p * self.rew).sum(-1))


def test_learns_toy_mdp_optimum_and_value() -> None:
    # Measured over 6 MDPs x 3 torch seeds (300 updates, ~2 s each): greedy accuracy 100% in 16
    # runs and 95% (one state stuck on a wrong action) in 2; max |V - V^pi| 0.10-0.23 (values
    # ~7-8); mean V^pi >= 0.978 mean V*. This MDP/seed: 100%, 0.165, V^pi within 0.003 of V*. The
    # entropy bonus above the default 0.01 makes that early collapse rarer.
    mdp = ToyMDP(seed=0)
    assert mdp.gap > 0.3  # the optimum is unambiguous
    ac = make_ac(mdp.A, seed=0, feat_dim=mdp.FEAT,
                 **{"model.hidden": 32, "train.horizon": 10, "train.batch_size": 32,
                    "train.ppo_epochs": 3, "train.lr_actor": 3e-3, "train.lr_critic": 3e-3,
                    "train.entropy": 0.1})
    g = torch.Generator().manual_seed(2)
    states = torch.arange(mdp.S)
    greedy, _ = ac.policy(mdp.feat(states), mdp.avail[states], greedy=True)
    assert (greedy == mdp.best).float().mean() < 0.6  # not solved by chance at init
    for _ in range(300):
        ac.update(mdp.rollout(ac, 10, 32, g))
    greedy, _ = ac.policy(mdp.feat(states), mdp.avail[states], greedy=True)
    assert (greedy == mdp.best).float().mean() >= 0.95
    v_pi = mdp.v_pi(ac)
    with torch.no_grad():
        v_hat = ac.value(mdp.feat(states))
    assert (v_hat - v_pi).abs().max() < 0.5
    assert v_pi.mean() >= 0.95 * mdp.v_star.mean()  # and the policy's value is near-optimal


# ---------------------------------------------------------------------------------------------
# Selection score and checkpoints


def test_critic_losses_rank_surprising_rewards_higher() -> None:
    A, H, B = 5, 4, 6
    ac = make_ac(A, **{"train.lr_critic": 3e-3})
    for seed in range(60):  # teach the critic that rewards are zero
        traj = random_traj(ac, H, B, seed=seed)
        traj.reward.zero_()
        ac.update(traj)
    traj = random_traj(ac, H, B, seed=100)
    traj.reward.zero_()
    traj.reward[0, 3:] = 3.0  # trajectories 3..5 are surprising (at t = 0, where w_t = 1)
    scores = ac.critic_losses(traj)
    assert scores.shape == (B,)
    assert scores[3:].min() > 10 * scores[:3].max()


def test_state_dict_round_trip_reproduces_next_update() -> None:
    A = 6
    ac = make_ac(A, seed=0, **{"train.ppo_epochs": 2})
    for seed in range(3):
        ac.update(random_traj(ac, 4, 5, seed=seed))
    buf = io.BytesIO()
    torch.save(ac.state_dict(), buf)
    buf.seek(0)
    clone = make_ac(A, seed=7, **{"train.ppo_epochs": 2})
    clone.load_state_dict(torch.load(buf))
    assert clone.entropy_coef == ac.entropy_coef

    traj = random_traj(ac, 4, 5, seed=9)
    assert ac.update(traj) == clone.update(traj)
    for a, b in zip(ac.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    assert ac.update(traj) == clone.update(traj)  # Adam moments were restored too


def test_range_scaling_does_not_amplify_small_advantages() -> None:
    """Regression: std-normalised advantages blew tiny, noisy imagined advantages up to unit std,
    which collapsed the policy's entropy within a few thousand env steps. "range" scaling divides
    by max(1, running 5-95% return range): small advantages stay small, large returns are scaled."""
    g = torch.Generator().manual_seed(0)
    value = torch.zeros(15, 64)
    small = 0.01 * torch.randn(15, 64, generator=g)
    std = make_ac(5, **{"train.adv_norm": "std"}).advantages(small, value)
    assert std.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-3)  # amplified ~100x
    ac = make_ac(5, **{"train.adv_norm": "range"})
    torch.testing.assert_close(ac.advantages(small, value), small)  # divisor max(1, S) = 1
    assert 0.0 < ac.return_scale < 1.0
    # Large returns: divided by their 5-95% range, kept as a running mean across updates.
    ac = make_ac(5, **{"train.adv_norm": "range"})
    big = torch.linspace(0.0, 20.0, 15 * 64).reshape(15, 64)
    adv = ac.advantages(big, value)
    assert ac.return_scale == pytest.approx(18.0, rel=1e-3)
    torch.testing.assert_close(adv, big / ac.return_scale)
    ac.advantages(small, value)
    assert ac.return_scale == pytest.approx(0.99 * 18.0 + 0.01 * float(torch.quantile(small.flatten(), 0.95)
                                                                     - torch.quantile(small.flatten(), 0.05)), rel=1e-4)
    clone = make_ac(5, seed=3, **{"train.adv_norm": "range"})
    clone.load_state_dict(ac.state_dict())
    assert clone.return_scale == ac.return_scale
    assert "return_scale" in ac.update(random_traj(ac, 3, 4))
