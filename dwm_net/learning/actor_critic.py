"""Actor and critic trained on imagined rollouts (paper eqs. 4-5, Algorithm 2).

The actor is trained with PPO-clip against the *behaviour* logits stored in each `Trajectory`,
because under rollout sharing (Algorithm 2) a batch may hold rollouts that a peer's actor
produced; the importance ratio is pi_self / pi_behaviour, never pi_self / pi_self_old.

Design (kept simple on purpose):

- No target critic. Lambda-returns are computed once per `update` from the critic's own values
  under no_grad and held fixed over the `ppo_epochs` passes, which is what stabilises the target.
- Losses are weighted per step by the cumulative discount w_t = prod_{k<t} d_k (w_0 = 1,
  detached), as DreamerV2 does: a step the world model thinks is unlikely to be reached (the
  episode probably ended before it) counts for less. d_k already holds gamma.
- Advantages A = R - v (detached) are scaled per `train.adv_norm`: "std" normalises them to zero
  mean, unit std over the whole (H, B) batch (MAMBA); "range" divides them by max(1, S), S a
  running mean (rate RETURN_SCALE_RATE per update) of the 5th-95th percentile range of the
  lambda-returns (DreamerV3), which never amplifies small, noisy advantages.
- One PPO pass = one full-batch gradient step for the actor and one for the critic; the entropy
  coefficient is multiplied by `entropy_decay` after every actor step ("rates are per gradient
  step" in the config), or, with `train.entropy_target`, steered toward that normalised entropy
  (see `normalised_entropy`).

Shape notes: H horizon, B batch, N any batch, F feature size, A actions.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dwm_net.config import ModelConfig, TrainConfig
from dwm_net.learning.nets import MLP, FusedAdam, low_precision
from dwm_net.learning.sampling import sample_index
from dwm_net.learning.types import EnvSpec, Latent, Trajectory

if TYPE_CHECKING:  # the world model is an argument here, not a dependency
    from dwm_net.learning.world_model import TensorBatch, WorldModel

# Finite rather than -inf so that p * log p stays 0 (not NaN) for masked actions.
MASKED_LOGIT = -1e9
RETURN_SCALE_RATE = 0.01  # weight of each update's return range in the running scale (DreamerV3)
# With `train.entropy_target`: per actor step, log(coef) += ENTROPY_RATE * (target - H) / target,
# so a collapsed policy (H = 0) raises the coefficient 10x in ~115 actor steps; clamped to ENTROPY_BOUNDS.
ENTROPY_RATE = 0.02
ENTROPY_BOUNDS = (1e-5, 1.0)


def masked_logits(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """(..., A) logits with unavailable actions set to MASKED_LOGIT.

    Also re-masks logits that arrive with -inf (or fp16 overflow) in unavailable slots. A row
    with no available action ends up uniform over all actions rather than NaN.
    """
    return torch.where(avail, logits, torch.full_like(logits, MASKED_LOGIT))


def lambda_returns(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor,
                   lam: float) -> torch.Tensor:
    """TD(lambda) returns (H, B) from reward (H, B), value (H+1, B), discount (H, B).

    R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1}), with R_H := v_H (the bootstrap).
    lam = 0 gives one-step TD targets, lam = 1 the discounted Monte Carlo return bootstrapped
    from v_H.
    """
    out = []
    nxt = value[-1]
    for t in reversed(range(reward.shape[0])):
        nxt = reward[t] + discount[t] * ((1 - lam) * value[t + 1] + lam * nxt)
        out.append(nxt)
    return torch.stack(out[::-1])


def real_returns(reward: torch.Tensor, term: torch.Tensor, first: torch.Tensor,
                 succ_value: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B, T) discounted returns of real sequences: G_t = r_t + gamma * (1 - term_t) * G_{t+1}
    while the episode continues inside the window, else with V(successor of s_t) in place of
    G_{t+1} (last step of the window, or the step before a ``first``: a cut, not an ending).
    reward, term (B, T) float; first (B, T) bool; succ_value (B, T) the critic's value of each
    step's successor state."""
    cont = torch.zeros_like(first)
    cont[:, :-1] = ~first[:, 1:]  # (B, T): step t+1 continues step t's episode
    out = torch.empty_like(reward)
    nxt = torch.zeros_like(reward[:, 0])
    for t in range(reward.shape[1] - 1, -1, -1):
        boot = torch.where(cont[:, t], nxt, succ_value[:, t])
        nxt = reward[:, t] + gamma * (1.0 - term[:, t]) * boot
        out[:, t] = nxt
    return out


def discount_weights(discount: torch.Tensor) -> torch.Tensor:
    """(H, B) loss weights w_t = prod_{k<t} d_k, w_0 = 1 (detached): the discounted probability
    that imagined state t is reached."""
    d = discount.detach()
    return torch.cat([torch.ones_like(d[:1]), d[:-1]]).cumprod(0)


def normalised_entropy(entropy: torch.Tensor, avail: torch.Tensor) -> float:
    """Mean of H / log(#available) over the states (..., A) with at least two available actions
    (1 = uniform over them, 0 = deterministic); 1.0 when no state has a choice."""
    n = avail.sum(-1)
    choice = n >= 2
    if not bool(choice.any()):
        return 1.0
    return float((entropy[choice] / n[choice].float().log()).mean())


def log_prob(logits: torch.Tensor, avail: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """(...) log pi(action) under the masked categorical given by logits (..., A)."""
    logp = torch.log_softmax(masked_logits(logits, avail), -1)
    return logp.gather(-1, action.unsqueeze(-1)).squeeze(-1)


def importance_ratio(logits: torch.Tensor, behaviour_logits: torch.Tensor, action: torch.Tensor,
                     avail: torch.Tensor) -> torch.Tensor:
    """pi(action) / mu(action), (H, B): pi from `logits`, mu from the stored `behaviour_logits`
    (possibly a peer's actor); both masked by the same `avail`."""
    return torch.exp(log_prob(logits, avail, action) - log_prob(behaviour_logits, avail, action))


class ActorCritic(nn.Module):
    """Actor (feat -> A logits) and critic (feat -> value) with their Adam optimisers.

    `state_dict` / `load_state_dict` cover the networks, both optimisers and the current entropy
    coefficient: the object is checkpointed as a whole, not nested inside another module.
    """

    def __init__(self, spec: EnvSpec, feat_dim: int, model_cfg: ModelConfig,
                 train_cfg: TrainConfig) -> None:
        super().__init__()
        self.cfg = train_cfg
        bf16 = low_precision(model_cfg.precision)
        self.actor = MLP(feat_dim, spec.n_actions, model_cfg.hidden, model_cfg.layers, bf16)
        self.critic = MLP(feat_dim, 1, model_cfg.hidden, model_cfg.layers, bf16)
        self.actor_opt = FusedAdam(self.actor.parameters(), lr=train_cfg.lr_actor)
        self.critic_opt = FusedAdam(self.critic.parameters(), lr=train_cfg.lr_critic)
        self.entropy_coef = train_cfg.entropy
        self.return_scale = 0.0  # running 5-95% range of the lambda-returns ("range" scaling)
        # With `train.actor_ema`, acting uses an exponential moving average of the actor's
        # weights (updated after every actor step); imagination and PPO use the actor itself.
        self.actor_avg: nn.Module | None = None
        if train_cfg.actor_ema > 0.0:
            self.actor_avg = copy.deepcopy(self.actor).requires_grad_(False)

    @property
    def acting_actor(self) -> nn.Module:
        """The network that acts in the environment: the averaged actor if there is one."""
        return self.actor if self.actor_avg is None else self.actor_avg

    def value(self, feat: torch.Tensor) -> torch.Tensor:
        """(...) critic value of feat (..., F)."""
        return self.critic(feat).squeeze(-1)

    @torch.no_grad()
    def policy(self, feat: torch.Tensor, avail: torch.Tensor,
               greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Act from feat (N, F) and avail (N, A) bool -> (action (N,) int64, masked logits (N, A)).

        The callable that imagination (the world model's `imagine`) uses, and acting unless
        ``train.actor_ema`` (see `acting_policy`); the logits it returns are what a `Trajectory`
        stores as the behaviour policy.
        """
        return self._act(self.actor, feat, avail, greedy)

    @torch.no_grad()
    def acting_policy(self, feat: torch.Tensor, avail: torch.Tensor,
                      greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """`policy` of `acting_actor`: what an agent does in the environment."""
        return self._act(self.acting_actor, feat, avail, greedy)

    @staticmethod
    def _act(actor: nn.Module, feat: torch.Tensor, avail: torch.Tensor,
             greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        logits = masked_logits(actor(feat), avail)
        if greedy:
            return logits.argmax(-1), logits
        return sample_index(torch.softmax(logits, -1)), logits

    @torch.no_grad()
    def _targets(self, traj: Trajectory
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(feat (H+1, B, F), values (H+1, B), lambda-returns (H, B), weights (H, B)) for a
        detached trajectory; values are the critic's before any update."""
        feat = traj.feat()
        value = self.value(feat)
        returns = lambda_returns(traj.reward, value, traj.discount, self.cfg.lam)
        return feat, value, returns, discount_weights(traj.discount)

    @torch.no_grad()
    def critic_losses(self, traj: Trajectory) -> np.ndarray:
        """(B,) float64 weighted squared error of the critic against its lambda-returns, per
        trajectory: the rollout selection score (paper 4.2)."""
        traj = traj.detach()
        _, value, returns, weight = self._targets(traj)
        err = weight * (value[:-1] - returns) ** 2
        return err.mean(0).double().cpu().numpy()

    def ratio(self, traj: Trajectory) -> torch.Tensor:
        """(H, B) importance ratio of the current actor against the trajectory's behaviour logits
        (with grad through the actor)."""
        logits = self.actor(traj.feat()[:-1])
        return importance_ratio(logits, traj.logits, traj.action, traj.avail)

    @torch.no_grad()
    def advantages(self, returns: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """(H, B) advantages R - v scaled per ``train.adv_norm`` (see the module docstring);
        "range" also updates the running ``return_scale``."""
        adv = returns - value
        if self.cfg.adv_norm == "std":
            return (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
        q = torch.tensor([0.05, 0.95], device=returns.device)
        lo, hi = torch.quantile(returns.flatten().float(), q)
        spread = float(hi - lo)
        self.return_scale = spread if self.return_scale == 0.0 else (
            (1 - RETURN_SCALE_RATE) * self.return_scale + RETURN_SCALE_RATE * spread)
        return adv / max(1.0, self.return_scale)

    def _adapt_entropy(self, entropy: torch.Tensor, avail: torch.Tensor) -> None:
        """After one actor step: decay the coefficient, or steer it toward the entropy target."""
        target = self.cfg.entropy_target
        if target <= 0.0:
            self.entropy_coef *= self.cfg.entropy_decay
            return
        shortfall = (target - normalised_entropy(entropy, avail)) / target
        lo, hi = ENTROPY_BOUNDS
        self.entropy_coef = min(hi, max(lo, self.entropy_coef * math.exp(ENTROPY_RATE * shortfall)))

    def self_imitate(self, feat: torch.Tensor, succ: torch.Tensor, action: torch.Tensor,
                     reward: torch.Tensor, term: torch.Tensor, first: torch.Tensor,
                     avail: torch.Tensor, ret: torch.Tensor | None = None) -> dict[str, float]:
        """One self-imitation step for the actor and one for the critic on real sequences
        (``train.self_imitation``, the loss weight): feat (B, T, F) the posterior states,
        succ (B, T, F) their successors (`WorldModel.successor`), action (B, T) int64, reward
        and term (B, T) float, first (B, T) bool, avail (B, T, A) bool, ret (B, T) float the
        episode's discounted return-to-go where known, NaN elsewhere (`SeqBatch.ret`).

        Actor: -w * mean(log pi(a_t | s_t) * max(G_t - V(s_t), 0) / max(1, return_scale));
        critic: w * mean(0.5 * max(G_t - V(s_t), 0)^2). G_t is the episode's return-to-go where
        ``ret`` knows it (Oh et al.'s Monte Carlo return: a win reaches every step of its
        episode, not only those of a window that holds it), else `real_returns` of the window.
        The steps use the PPO optimisers, so a small self-imitation gradient makes a small step
        beside PPO's (a separate Adam would scale it up to a full step); with no positive
        advantage in the batch no step is taken (Adam's momentum would move the nets anyway).
        """
        w = self.cfg.self_imitation
        with torch.no_grad():
            returns = real_returns(reward, term, first, self.value(succ), self.cfg.gamma)
            if ret is not None:
                returns = torch.where(torch.isnan(ret), returns, ret)
            scale = max(1.0, self.return_scale) if self.cfg.adv_norm == "range" else 1.0
        value = self.value(feat)  # (B, T), with grad for the critic's step
        adv = (returns - value).clamp(min=0.0)  # (B, T)
        metrics = {"positive": (adv > 0).float().mean().item(), "adv_max": adv.max().item()}
        if metrics["positive"] == 0.0:
            return {"actor_loss": 0.0, "critic_loss": 0.0, **metrics}
        logp = log_prob(self.actor(feat), avail, action)  # (B, T)
        actor_loss = -w * (logp * adv.detach() / scale).mean()
        self._descend(actor_loss, self.actor, self.actor_opt)
        self._average_actor()
        critic_loss = w * 0.5 * adv.square().mean()  # the actor's step leaves the critic as it was
        self._descend(critic_loss, self.critic, self.critic_opt)
        return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(), **metrics}

    def _descend(self, loss: torch.Tensor, net: nn.Module, opt: torch.optim.Optimizer) -> None:
        """One gradient step of ``net`` on ``loss``, its global norm clipped (grad_clip_policy)."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip_policy)
        opt.step()

    @torch.no_grad()
    def _average_actor(self) -> None:
        """avg <- d * avg + (1 - d) * actor, d = ``train.actor_ema`` (after each actor step)."""
        if self.actor_avg is not None:
            for avg, p in zip(self.actor_avg.parameters(), self.actor.parameters(), strict=True):
                avg.lerp_(p, 1.0 - self.cfg.actor_ema)

    def update(self, traj: Trajectory) -> dict[str, float]:
        """`ppo_epochs` PPO-clip passes for the actor and MSE passes for the critic on one batch.

        Metrics are means over the passes, except value/return/advantage statistics (from before
        the update) and `entropy_coef` (the coefficient after this update's decay).
        """
        traj = traj.detach()
        cfg = self.cfg
        feat, value, returns, weight = self._targets(traj)
        value = value[:-1]  # (H, B): the critic's forward pass of the targets, not a second one
        with torch.no_grad():
            adv_std = (returns - value).std(unbiased=False)
            adv = self.advantages(returns, value)

        sums = {"actor_loss": 0.0, "critic_loss": 0.0, "entropy": 0.0}
        for _ in range(cfg.ppo_epochs):
            logits = masked_logits(self.actor(feat[:-1]), traj.avail)  # (H, B, A)
            ratio = importance_ratio(logits, traj.logits, traj.action, traj.avail)
            surrogate = torch.min(ratio * adv,
                                  ratio.clamp(1 - cfg.ppo_clip, 1 + cfg.ppo_clip) * adv)
            logp = torch.log_softmax(logits, -1)
            entropy = -(logp.exp() * logp).sum(-1)  # (H, B)
            actor_loss = -(weight * (surrogate + self.entropy_coef * entropy)).mean()
            self._descend(actor_loss, self.actor, self.actor_opt)
            self._average_actor()
            self._adapt_entropy(entropy.detach(), traj.avail)

            critic_loss = (weight * (self.value(feat[:-1]) - returns) ** 2).mean()
            self._descend(critic_loss, self.critic, self.critic_opt)

            sums["actor_loss"] += actor_loss.item()
            sums["critic_loss"] += critic_loss.item()
            sums["entropy"] += entropy.mean().item()
        metrics = {k: v / cfg.ppo_epochs for k, v in sums.items()}
        metrics.update(entropy_coef=self.entropy_coef, value_mean=value.mean().item(),
                       return_mean=returns.mean().item(), adv_std=adv_std.item(),
                       return_scale=self.return_scale)
        return metrics

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"nets": super().state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "entropy_coef": self.entropy_coef,
                "return_scale": self.return_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # type: ignore[override]
        super().load_state_dict(state["nets"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.entropy_coef = float(state["entropy_coef"])
        self.return_scale = float(state.get("return_scale", 0.0))  # absent in older checkpoints


def self_imitate_real(ac: ActorCritic, wm: WorldModel, batch: TensorBatch, post: Latent) -> dict[str, float]:
    """`ActorCritic.self_imitate` on real sequences ``batch`` (B, T, ...) and their posterior
    states ``post``: the successors come from the world model, without gradient."""
    with torch.no_grad():
        succ = wm.successor(post, batch.action, batch.first)  # (B, T, F)
    return ac.self_imitate(post.feat(), succ, batch.action, batch.reward, batch.term, batch.first,
                           batch.avail, batch.ret)


__all__ = [
    "ENTROPY_BOUNDS",
    "ENTROPY_RATE",
    "MASKED_LOGIT",
    "ActorCritic",
    "discount_weights",
    "importance_ratio",
    "lambda_returns",
    "log_prob",
    "masked_logits",
    "normalised_entropy",
    "real_returns",
    "self_imitate_real",
]
