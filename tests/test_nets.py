"""The MLPs' precision (`model.precision`): bfloat16 products, float32 everywhere else."""

from __future__ import annotations

import pytest
import torch

from dwm_net.config import ConfigError, load_config
from dwm_net.learning import nets
from dwm_net.learning.actor_critic import ActorCritic
from dwm_net.learning.nets import MLP, low_precision
from dwm_net.learning.types import EnvSpec
from dwm_net.learning.world_model import WorldModel


def test_bf16_mlp_returns_float32_close_to_the_float32_mlp_and_trains_float32_weights():
    torch.manual_seed(0)
    full = MLP(40, 7, 64, 2)
    half = MLP(40, 7, 64, 2, bf16=True)
    half.load_state_dict(full.state_dict())  # the same weights under the same names
    x = torch.randn(256, 40)
    y_full, y_half = full(x), half(x)
    assert y_half.dtype == torch.float32
    assert y_half.shape == y_full.shape
    # bfloat16 keeps 8 bits of mantissa: close, not equal.
    assert not torch.equal(y_half, y_full)
    assert torch.allclose(y_half, y_full, rtol=0.05, atol=0.05 * y_full.abs().max().item())
    y_half.square().mean().backward()
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
               for p in half.parameters())


def test_checkpoints_load_across_precisions():
    spec = EnvSpec(obs_dim=12, n_actions=5, n_agents=2, episode_limit=20)
    tiny = load_config("tiny")
    bf16 = load_config("tiny", overrides=["model.precision=bfloat16"])
    wm_a, wm_b = WorldModel(spec, tiny.model), WorldModel(spec, bf16.model)
    wm_b.load_state_dict(wm_a.state_dict())
    ac_a = ActorCritic(spec, wm_a.feat_size, tiny.model, tiny.train)
    ac_b = ActorCritic(spec, wm_b.feat_size, bf16.model, bf16.train)
    ac_b.load_state_dict(ac_a.state_dict())
    assert wm_b.reward_head.bf16 and ac_b.actor.bf16 and not ac_a.critic.bf16


@pytest.mark.parametrize("amx, avx512_bf16", [(True, False), (False, True), (True, True), (False, False)])
def test_auto_asks_the_cpu(monkeypatch, amx: bool, avx512_bf16: bool):
    assert not low_precision("float32") and low_precision("bfloat16")
    monkeypatch.setattr(nets, "amx_available", lambda: amx)
    monkeypatch.setattr(nets, "avx512_bf16_available", lambda: avx512_bf16)
    assert low_precision("auto") == (amx or avx512_bf16)


def test_an_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="model.precision"):
        load_config("cpu", overrides=["model.precision=fp8"])


def test_fused_adam_steps_as_adam_does_and_stays_fused_after_loading_an_unfused_state():
    torch.manual_seed(0)
    a, b = MLP(12, 3, 16, 2), MLP(12, 3, 16, 2)
    b.load_state_dict(a.state_dict())
    plain, fused = torch.optim.Adam(a.parameters(), lr=1e-2), nets.FusedAdam(b.parameters(), lr=1e-2)
    x = torch.randn(32, 12)
    for _ in range(5):
        for net, opt in ((a, plain), (b, fused)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # A checkpoint of the unfused optimizer (the format before FusedAdam) resumes fused.
    resumed = nets.FusedAdam(b.parameters(), lr=1e-2)
    resumed.load_state_dict(plain.state_dict())
    assert all(g["fused"] is True for g in resumed.param_groups)
    assert resumed.state_dict()["state"][0]["exp_avg"].shape == (16, 12)
    resumed.step()
