"""World model: shapes, straight-through, resets, KL balance, Algorithm 1 routing, learning,
imagination and learner save/load (tiny preset, CPU, one thread)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from dwm_net.config import load_config, replace
from dwm_net.learning import world_model as wm
from dwm_net.learning.types import EnvSpec, Latent, SeqBatch, Trajectory
from dwm_net.learning.world_model import LOSS_KEYS, SCORE_KEYS, TensorBatch, WorldModel, WorldModelLearner

torch.set_num_threads(1)

CFG = load_config("tiny")
# (obs size, actions) of two SMAC maps: 2s_vs_1sc-like and a larger one.
SIZES = [(17, 7), (80, 11)]


def make_spec(obs_dim: int, n_actions: int) -> EnvSpec:
    return EnvSpec(obs_dim=obs_dim, n_actions=n_actions, n_agents=2, episode_limit=50)


def random_batch(b: int, t: int, spec: EnvSpec, seed: int = 0, own: np.ndarray | None = None) -> SeqBatch:
    rng = np.random.default_rng(seed)
    first = rng.random((b, t)) < 0.2
    first[:, 0] = True
    avail = rng.random((b, t, spec.n_actions)) < 0.5
    avail[..., 0] = True
    return SeqBatch(
        obs=rng.normal(size=(b, t, spec.obs_dim)).astype(np.float32),
        action=rng.integers(0, spec.n_actions, (b, t)).astype(np.int64),
        reward=rng.normal(size=(b, t)).astype(np.float32),
        term=(rng.random((b, t)) < 0.1).astype(np.float32),
        avail=avail,
        first=first,
        own=np.ones(b, bool) if own is None else own,
    )


def subset(batch: SeqBatch, rows: np.ndarray) -> SeqBatch:
    return SeqBatch(**{k: None if getattr(batch, k) is None else getattr(batch, k)[rows]
                       for k in batch.__dataclass_fields__})


def make_model(spec: EnvSpec, seed: int = 0, **model_changes: object) -> WorldModel:
    torch.manual_seed(seed)
    cfg = replace(CFG, **{f"model.{k}": v for k, v in model_changes.items()}).model
    return WorldModel(spec, cfg)


def mode_onehot(probs: torch.Tensor) -> torch.Tensor:
    """Deterministic straight-through stand-in for sample_onehot (argmax instead of a draw)."""
    onehot = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
    return onehot + probs - probs.detach()


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]


# -- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("obs_dim,n_actions", SIZES)
@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("t", [1, 5])
def test_shapes(obs_dim: int, n_actions: int, b: int, t: int) -> None:
    spec = make_spec(obs_dim, n_actions)
    model = make_model(spec)
    m = model.cfg
    batch = random_batch(b, t, spec)
    tb = TensorBatch.from_numpy(batch)
    post, prior_logits, post_logits = model.observe(tb.obs, tb.action, tb.first)
    assert post.deter.shape == (b, t, m.deter)
    assert post.stoch.shape == (b, t, m.n_categoricals, m.n_classes)
    assert post.feat().shape == (b, t, model.feat_size)
    assert prior_logits.shape == post_logits.shape == (b, t, m.n_categoricals, m.n_classes)
    assert torch.allclose(post.stoch.sum(-1), torch.ones(b, t, m.n_categoricals))

    losses = model.losses(batch)
    assert set(losses) == set(LOSS_KEYS)
    for value in losses.values():
        assert value.shape == (b, t) and torch.isfinite(value).all()

    total, metrics = model.loss(batch, batch.own)
    assert total.shape == () and torch.isfinite(total)
    assert set(LOSS_KEYS) <= set(metrics)

    scores = model.scores(batch)
    assert set(scores) == set(SCORE_KEYS)
    assert all(v.shape == (b,) and np.isfinite(v).all() for v in scores.values())

    latent = model.act_step(model.initial(b), tb.action[:, 0], tb.obs[:, 0], tb.first[:, 0])
    assert latent.deter.shape == (b, m.deter) and latent.stoch.shape == (b, m.n_categoricals, m.n_classes)
    assert not latent.deter.requires_grad


# -- RSSM mechanics -------------------------------------------------------------------------------


def test_straight_through_reaches_posterior_logits() -> None:
    spec = make_spec(*SIZES[0])
    model = make_model(spec)
    tb = TensorBatch.from_numpy(random_batch(2, 1, spec))
    post, _, _ = model.observe(tb.obs, tb.action, tb.first)
    # With T=1, h_0 = GRU(0, 0, 0) does not depend on the posterior: the decoder reaches the
    # posterior network and the encoder only through the one-hot sample's straight-through path.
    model.decoder(post.feat()).square().sum().backward()
    for part in (model.post_net, model.encoder):
        assert sum(g.abs().sum() for g in grads(part)) > 0


def test_reset_at_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wm, "sample_onehot", mode_onehot)
    spec = make_spec(*SIZES[0])
    model = make_model(spec)
    batch = random_batch(2, 6, spec)
    batch.first[:] = False
    batch.first[:, 0] = True
    batch.first[0, 3] = True  # sequence 0 restarts at t=3, sequence 1 does not
    tb = TensorBatch.from_numpy(batch)
    obs = tb.obs.clone().requires_grad_(True)
    post, _, _ = model.observe(obs, tb.action, tb.first)
    # After a reset, h is GRU(0, 0, 0), the same as at t=0.
    assert torch.allclose(post.deter[0, 3], post.deter[0, 0])
    assert not torch.allclose(post.deter[1, 3], post.deter[1, 0])
    # Nothing observed before the reset influences the state after it.
    post.feat()[:, 4].sum().backward()
    assert obs.grad[0, :3].abs().sum() == 0 and obs.grad[0, 3:5].abs().sum() > 0
    assert obs.grad[1, :3].abs().sum() > 0
    # A fresh sequence starting at the reset gives the same states.
    fresh, _, _ = model.observe(tb.obs[:1, 3:], tb.action[:1, 3:], tb.first[:1, 3:])
    assert torch.allclose(fresh.deter[0], post.deter[0, 3:], atol=1e-6)


def test_split_observe_and_act_step_match_observe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wm, "sample_onehot", mode_onehot)
    spec = make_spec(*SIZES[1])
    model = make_model(spec)
    tb = TensorBatch.from_numpy(random_batch(3, 6, spec, seed=2))
    with torch.no_grad():
        whole, _, _ = model.observe(tb.obs, tb.action, tb.first)
        head, _, _ = model.observe(tb.obs[:, :2], tb.action[:, :2], tb.first[:, :2])
        tail, _, _ = model.observe(tb.obs[:, 2:], tb.action[:, 2:], tb.first[:, 2:],
                                   start=head.map(lambda x: x[:, -1]), prev_action=tb.action[:, 1])
    assert torch.allclose(torch.cat([head.feat(), tail.feat()], 1), whole.feat(), atol=1e-6)
    # Acting step by step from the zero state gives the same posterior states.
    latent, prev = model.initial(3), torch.zeros(3, dtype=torch.int64)
    for t in range(6):
        latent = model.act_step(latent, prev, tb.obs[:, t], tb.first[:, t])
        prev = tb.action[:, t]
        assert torch.allclose(latent.feat(), whole.feat()[:, t], atol=1e-6)


def test_kl_balance_routes_gradients() -> None:
    spec = make_spec(*SIZES[0])
    batch = TensorBatch.from_numpy(random_batch(2, 3, spec))

    def kl_grads(balance: float) -> tuple[torch.Tensor, torch.Tensor]:
        model = make_model(spec, kl_balance=balance)
        captured = {}
        observe = model.observe

        def spy(*args: object, **kwargs: object) -> object:
            post, prior_logits, post_logits = observe(*args, **kwargs)
            prior_logits.retain_grad()
            post_logits.retain_grad()
            captured.update(prior=prior_logits, post=post_logits)
            return post, prior_logits, post_logits

        model.observe = spy  # type: ignore[method-assign]
        model.losses(batch)["kl"].sum().backward()
        # At the last step the posterior feeds no later prior: only the KL's direct path is left.
        return captured["prior"].grad[:, -1], captured["post"].grad[:, -1]

    prior_g, post_g = kl_grads(1.0)
    assert post_g.abs().sum() == 0 and prior_g.abs().sum() > 0
    prior_g, post_g = kl_grads(0.0)
    assert prior_g.abs().sum() == 0 and post_g.abs().sum() > 0
    prior_g, post_g = kl_grads(0.8)
    assert prior_g.abs().sum() > 0 and post_g.abs().sum() > 0


def test_free_nats_floor_the_kl() -> None:
    spec = make_spec(*SIZES[0])
    model = make_model(spec, free_nats=1e3)
    kl = model.losses(random_batch(2, 3, spec))["kl"]
    assert torch.allclose(kl, torch.full_like(kl, 1e3))


def test_kl_average_is_the_sum_over_categoricals_divided_by_their_count() -> None:
    spec = make_spec(*SIZES[0])
    batch = random_batch(2, 3, spec)
    kls = {}
    for average in (False, True):
        model = make_model(spec, kl_average=average)
        torch.manual_seed(1)  # the same posterior samples for both
        kls[average] = model.losses(batch)["kl"]
    assert kls[False].min() > 0
    assert torch.allclose(kls[True], kls[False] / model.cfg.n_categoricals, rtol=1e-5)


def test_presets_sum_or_average_the_kl_as_their_sources_do() -> None:
    from dwm_net.config import load_config
    assert load_config("paper").model.kl_average is False  # DreamerV2
    assert load_config("mamba").model.kl_average is True  # MAMBA state_divergence_loss: .mean(-1)


def test_the_action_decoder_is_the_papers_and_learns_the_own_policy() -> None:
    # Paper eq. 1: an action decoder a_t ~ p(a_t | h_t, z_t) beside the observation decoder.
    assert load_config("paper").model.action_decoder == load_config("mamba").model.action_decoder == 1.0
    assert load_config("cpu").model.action_decoder == load_config("explore").model.action_decoder == 0.0
    spec = make_spec(*SIZES[0])
    model = make_model(spec, action_decoder=1.0)
    batch = random_batch(4, 6, spec)
    batch.action[:] = 1  # a deterministic behaviour: the decoder's NLL should fall toward 0
    learner = WorldModelLearner(model, replace(CFG, **{"train.lr_wm": 3e-3}).train)
    first = learner.update(batch)["action"]
    for _ in range(60):
        last = learner.update(batch)["action"]
    assert first > 1.0 and last < 0.1 * first


# -- Algorithm 1 routing --------------------------------------------------------------------------


def decoders(model: WorldModel) -> list[torch.nn.Module]:
    return [model.decoder] + ([] if model.action_decoder is None else [model.action_decoder])


@pytest.mark.parametrize("action_decoder", [0.0, 1.0])
def test_peer_sequences_give_decoder_no_gradient(action_decoder: float) -> None:
    spec = make_spec(*SIZES[0])
    model = make_model(spec, action_decoder=action_decoder)
    assert (model.action_decoder is not None) == (action_decoder > 0)
    batch = random_batch(3, 5, spec, own=np.zeros(3, bool))
    total, metrics = model.loss(batch, batch.own)
    total.backward()
    assert all(g.abs().sum() == 0 for d in decoders(model) for g in grads(d))
    assert metrics["obs"] == 0.0 and metrics.get("action", 0.0) == 0.0
    for part in (model.encoder, model.rnn, model.prior_net, model.post_net,
                 model.reward_head, model.cont_head, model.avail_head):
        assert sum(g.abs().sum() for g in grads(part)) > 0


@pytest.mark.parametrize("action_decoder", [0.0, 1.0])
def test_decoder_gradient_equals_own_subset(monkeypatch: pytest.MonkeyPatch, action_decoder: float) -> None:
    monkeypatch.setattr(wm, "sample_onehot", mode_onehot)  # same latents in both batches
    spec = make_spec(*SIZES[1])
    own = np.array([True, False, True, False])
    batch = random_batch(4, 5, spec, own=own)

    mixed = make_model(spec, action_decoder=action_decoder)
    mixed.loss(batch, own)[0].backward()
    alone = make_model(spec, action_decoder=action_decoder)
    alone_batch = subset(batch, own)
    alone.loss(alone_batch, alone_batch.own)[0].backward()

    for d_mixed, d_alone in zip(decoders(mixed), decoders(alone)):
        for g_mixed, g_alone in zip(grads(d_mixed), grads(d_alone)):
            assert torch.allclose(g_mixed, g_alone, atol=1e-6)
    # The RSSM does learn from the peers' sequences.
    assert not all(torch.allclose(a, b) for a, b in zip(grads(mixed.rnn), grads(alone.rnn)))


# -- learning -------------------------------------------------------------------------------------


def toy_batch(b: int = 8, t: int = 8, episode: int = 4, seed: int = 0) -> tuple[EnvSpec, SeqBatch]:
    """A deterministic counting task: obs is the phase one-hot; action `phase % A` pays 1; the
    episode ends after `episode` steps; actions of the same parity as the phase are available."""
    spec = make_spec(6, 3)
    rng = np.random.default_rng(seed)
    phase = np.tile(np.arange(t) % episode, (b, 1))  # (B, T)
    obs = np.zeros((b, t, spec.obs_dim), np.float32)
    np.put_along_axis(obs, phase[..., None], 1.0, -1)
    action = rng.integers(0, spec.n_actions, (b, t))
    avail = (np.arange(spec.n_actions) % 2)[None, None] == (phase % 2)[..., None]
    batch = SeqBatch(obs=obs, action=action.astype(np.int64),
                     reward=(action == phase % spec.n_actions).astype(np.float32),
                     term=(phase == episode - 1).astype(np.float32), avail=avail,
                     first=phase == 0, own=np.ones(b, bool))
    return spec, batch


def test_world_model_loss_falls() -> None:
    spec, batch = toy_batch()
    model = make_model(spec)
    learner = WorldModelLearner(model, replace(CFG, **{"train.lr_wm": 3e-3}).train)
    torch.manual_seed(0)
    history = [learner.update(batch)["loss"] for _ in range(150)]
    first, last = history[0], float(np.mean(history[-10:]))
    print(f"world-model loss {first:.3f} -> {last:.3f}")
    assert last < 0.5 * first, (first, last)


# -- imagination ----------------------------------------------------------------------------------


def uniform_policy(feat: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.zeros(avail.shape).masked_fill(~avail, -1e9)
    return torch.distributions.Categorical(logits=logits).sample(), logits


@pytest.mark.parametrize("obs_dim,n_actions", SIZES)
def test_imagine(obs_dim: int, n_actions: int) -> None:
    spec = make_spec(obs_dim, n_actions)
    model = make_model(spec)
    m, n, h, gamma = model.cfg, 6, 4, 0.9
    with torch.no_grad():
        model.avail_head[-1].bias.fill_(-50.0)  # predicts nothing available: the fallback must act
    batch = TensorBatch.from_numpy(random_batch(2, 3, spec))
    post, _, _ = model.observe(batch.obs, batch.action, batch.first)
    start = post.map(lambda x: x.flatten(0, 1))  # (N, ...)
    traj = model.imagine(start, uniform_policy, h, gamma)
    assert isinstance(traj, Trajectory) and traj.horizon == h
    assert traj.deter.shape == (h + 1, n, m.deter)
    assert traj.stoch.shape == (h + 1, n, m.n_categoricals, m.n_classes)
    assert traj.feat().shape == (h + 1, n, model.feat_size)
    assert traj.action.shape == (h, n) and traj.action.dtype == torch.int64
    assert traj.logits.shape == traj.avail.shape == (h, n, n_actions) and traj.avail.dtype == torch.bool
    assert traj.reward.shape == traj.discount.shape == (h, n)
    assert traj.avail.any(-1).all()
    assert ((traj.discount >= 0) & (traj.discount <= gamma)).all()
    assert torch.equal(traj.deter[0], start.deter.detach())
    assert not any(x.requires_grad for x in (traj.deter, traj.stoch, traj.reward, traj.discount))
    # Reward and discount of step t are the heads on state t+1 (computed after the loop, batched).
    with torch.no_grad():
        nxt = traj.feat()[1:]
        torch.testing.assert_close(traj.reward, model.reward_head(nxt).squeeze(-1))
        torch.testing.assert_close(traj.discount, gamma * model.cont_head(nxt).squeeze(-1).sigmoid())


def test_imagine_matches_the_plain_step_by_step_rollout() -> None:
    """`imagine` writes each state into one feature buffer (no per-step concatenation, no
    straight-through term): the same rollout as the plain loop, same draws from the same RNG."""
    spec = make_spec(*SIZES[0])
    model = make_model(spec)
    batch = TensorBatch.from_numpy(random_batch(3, 4, spec))
    with torch.no_grad():
        post, _, _ = model.observe(batch.obs, batch.action, batch.first)
        start = post.map(lambda x: x.flatten(0, 1))  # (N, ...)
        torch.manual_seed(7)
        traj = model.imagine(start, uniform_policy, 5, 0.9)
        torch.manual_seed(7)
        state, deters, stochs, actions = start, [start.deter], [start.stoch], []
        for _ in range(5):
            feat = state.feat()
            action, _ = uniform_policy(feat, model.predict_avail(feat))
            h = model._recurrent(state.deter, state.stoch, model._onehot(action))
            state = Latent(h, wm.sample_onehot(wm.categorical_probs(model._prior_logits(h))))
            deters.append(state.deter)
            stochs.append(state.stoch)
            actions.append(action)
    assert torch.equal(traj.action, torch.stack(actions))
    torch.testing.assert_close(traj.deter, torch.stack(deters))
    torch.testing.assert_close(traj.stoch, torch.stack(stochs))
    assert set(traj.stoch[1:].unique().tolist()) == {0.0, 1.0}  # exact one-hot samples


def test_predicted_avail_thresholds_at_half() -> None:
    spec = make_spec(*SIZES[0])
    model = make_model(spec)
    with torch.no_grad():
        model.avail_head[-1].weight.zero_()
        model.avail_head[-1].bias.copy_(torch.tensor([3.0, -3.0, 3.0, -3.0, -3.0, -3.0, -3.0]))
    avail = model.predict_avail(model.initial(2).feat(), sample=False)
    assert avail.tolist() == [[True, False, True, False, False, False, False]] * 2


def test_imagination_samples_uncertain_availability() -> None:
    """Regression: imagination used to threshold availability at p = 0.5, so an action the model
    gives p = 0.3 (attack while range is uncertain) was never available in imagination and the
    actor could never learn it. Now each action is drawn with its predicted probability."""
    spec = make_spec(*SIZES[0])
    model = make_model(spec)
    with torch.no_grad():
        model.avail_head[-1].weight.zero_()
        model.avail_head[-1].bias.copy_(torch.tensor([30.0, -30.0, -30.0, -30.0, -30.0, -30.0, -0.8473]))
    torch.manual_seed(0)
    avail = model.predict_avail(model.initial(4000).feat()).float()  # p(last) = sigmoid(-0.8473) = 0.3
    assert avail[:, 0].all() and not avail[:, 1:6].any()
    assert 0.27 < avail[:, 6].mean().item() < 0.33
    def policy(feat: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return avail.float().multinomial(1).squeeze(-1), avail.float()

    traj = model.imagine(model.initial(4000), policy, horizon=1, gamma=0.99)
    assert 0.27 < traj.avail[0, :, 6].float().mean().item() < 0.33
    # The action is only ever drawn among the sampled-available ones.
    assert traj.avail[0].gather(-1, traj.action[0, :, None]).all()


# -- learner save / load --------------------------------------------------------------------------


def test_learner_state_dict_round_trip() -> None:
    spec = make_spec(*SIZES[0])
    batch = random_batch(3, 5, spec)
    learner = WorldModelLearner(make_model(spec, seed=0), CFG.train)
    learner.update(batch)
    buffer = io.BytesIO()
    torch.save(learner.state_dict(), buffer)
    torch.manual_seed(123)
    expected = learner.update(batch)

    buffer.seek(0)
    restored = WorldModelLearner(make_model(spec, seed=1), CFG.train)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    torch.manual_seed(123)
    assert restored.update(batch) == expected
    for a, b in zip(learner.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)
