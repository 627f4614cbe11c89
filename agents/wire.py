"""Agent data <-> the `experience` and `rollout` messages, checked against this agent's spec.

The transport already rejects frames that break the message schema; what it cannot know is
whether a well-formed message fits *this* agent (obs size, action count, latent sizes, horizon).
`WireError` says which part does not; the agent counts it and skips the message.

A rollout travels as H actions (with their availability, logits, rewards and discounts) and
H + 1 latent states, exactly as the `Trajectory` it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from comms.budget import Budget, parse_budget
from comms.compact import compact_experience, pack_actions, pack_bits, to_wire_float, unpack_bits
from comms.messages import ExperienceMsg, ParamsMsg, RolloutMsg
from dwm_net.config import CommsConfig, ModelConfig
from dwm_net.learning.types import EnvSpec


class WireError(ValueError):
    """A well-formed message that does not fit this agent; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _check(ok: bool, reason: str, detail: str) -> None:
    if not ok:
        raise WireError(reason, detail)


def _avail(avail: np.ndarray, rows: int, n_actions: int) -> np.ndarray:
    """(rows, A) bool from bool (rows, A), 0/1 uint8 (rows, A) or packed bits (rows, ceil(A/8))."""
    _check(avail.ndim == 2 and avail.shape[0] == rows, "shape", f"avail {avail.shape}")
    if avail.dtype == np.uint8 and avail.shape[1] == (n_actions + 7) // 8:
        return unpack_bits(avail, n_actions)
    _check(avail.shape[1] == n_actions, "shape", f"avail {avail.dtype}{avail.shape}, A={n_actions}")
    _check(avail.dtype == bool or bool(np.all(avail <= 1)), "range", "avail holds values other than 0/1")
    return avail.astype(bool)


def _actions(actions: np.ndarray, n_actions: int) -> np.ndarray:
    _check(bool(np.all((actions >= 0) & (actions < n_actions))), "range", f"actions outside [0, {n_actions})")
    return actions.astype(np.int64)


def _taken_available(actions: np.ndarray, avail: np.ndarray) -> None:
    # An unavailable taken action has probability 0 under the masked policy: its log-prob and
    # importance ratio are infinite, and a world model would learn a move the env forbids.
    _check(bool(np.all(avail[np.arange(len(actions)), actions])), "unavailable",
           "a taken action is marked unavailable")


def _finite(name: str, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    _check(bool(np.all(np.isfinite(x))), "nonfinite", f"{name} holds inf or NaN")
    return x


# Far above any env's per-step reward (SMAC's are normalised to about 20 an episode), far below
# where float32 sums of returns lose all precision: a reward beyond it is forged or broken.
MAX_ABS_REWARD = 1e6


def _rewards(x: np.ndarray) -> np.ndarray:
    x = _finite("rewards", x)
    _check(bool(np.all(np.abs(x) <= MAX_ABS_REWARD)), "range", f"a reward beyond +/-{MAX_ABS_REWARD:g}")
    return x


def link_budget(c: CommsConfig) -> Budget:
    """The byte budget of an agent's outgoing link, from the config's comms section."""
    return parse_budget(c.budget, None if c.budget == "unlimited" else c.burst_bytes)


# --- experience ---------------------------------------------------------------------------------

def experience_msg(chunk: Mapping[str, np.ndarray], *, sender: int, seq: int, step: int,
                   score: float, float16: bool, t0: int = 0, ends: bool = True) -> ExperienceMsg:
    """One real chunk (obs (T, D), action (T,), reward (T,), term (T,), avail (T, A)) in its
    compact wire form (bits for avail, smallest ints for actions, optional float16 obs).
    ``t0``/``ends``: where it lies in its episode (defaults: a standalone window)."""
    arrays = compact_experience(chunk["obs"], chunk["action"], chunk["reward"], chunk["term"],
                                chunk["avail"], float16=float16)
    return ExperienceMsg(sender=sender, seq=seq, step=step, n_actions=int(chunk["avail"].shape[-1]),
                         score=float(score), t0=int(t0), ends=bool(ends), **arrays)


def experience_from_msg(msg: ExperienceMsg, spec: EnvSpec) -> dict[str, np.ndarray]:
    """`EpisodeReplay.add_chunk` arguments. A reset point follows every terminal step, so a chunk
    that spans an episode end never carries the RSSM state across it."""
    _check(msg.n_actions == spec.n_actions, "spec", f"n_actions {msg.n_actions} != {spec.n_actions}")
    t = msg.actions.shape[0]
    # No chunk is longer than an episode; a longer one would only overrun the learner's replay.
    _check(1 <= t <= spec.episode_limit, "shape", f"{t} steps, expected 1..{spec.episode_limit}")
    _check(msg.obs.shape == (t, spec.obs_dim), "shape", f"obs {msg.obs.shape}, D={spec.obs_dim}")
    _check(msg.t0 >= 0, "range", f"t0 {msg.t0} < 0")
    _check(msg.terms.dtype == bool or bool(np.all(msg.terms <= 1)), "range", "terms hold values other than 0/1")
    term = msg.terms.astype(bool)
    first = np.zeros(t, bool)
    first[0] = True
    first[1:] = term[:-1]
    action, avail = _actions(msg.actions, spec.n_actions), _avail(msg.avail, t, spec.n_actions)
    _taken_available(action, avail)
    return {"obs": _finite("obs", msg.obs), "action": action, "reward": _rewards(msg.rewards),
            "term": term, "avail": avail, "first": first}


class EpisodeJoiner:
    """Joins each sender's consecutive experience chunks back into whole episodes.

    An agent feeding the centralized learner sends every episode as chunks of `share.chunk_len`
    steps (`ExperienceMsg.t0` / `ends` say where each lies). Stored one by one, every chunk
    would start a new segment: the RSSM state reset every `chunk_len` steps inside an episode
    and the return-to-go known only in the last chunk. So a sender's chunks are held until its
    episode's last one arrives and then stored as one segment (`store`, `EpisodeReplay.add_chunk`
    arguments). A chunk that does not follow on (a lost message) ends what is held: that part is
    stored, and the chunk starts a new segment (its state resets, as it must without the steps
    before it). Chunks of different senders may interleave freely.

    Bounds, so that no peer can make it hold without limit: one sender's segment never exceeds
    ``max_steps`` (an episode is never longer; what is held is stored first when the next chunk
    would pass it, and stored once it reaches it), and all senders together hold at most
    ``max_steps * max_senders`` steps. Past that, the partial episode of the sender that has
    waited longest since its last chunk is stored early (counted in ``evicted``): a flood of
    forged sender ids then only splits episodes, it cannot grow memory. Stored rather than
    dropped because it passed the same checks as any chunk, and a real agent's slow episode
    loses only its RSSM state carry-over, not its steps.
    """

    def __init__(self, store: Callable[[dict[str, np.ndarray]], None], max_steps: int,
                 max_senders: int = 8) -> None:
        self._store = store
        self._max_steps = max_steps
        self._max_held = max_steps * max(1, max_senders)
        # sender -> (step, next t0, parts, their steps); dict order: least recently extended first
        self._held: dict[int, tuple[int, int, list[dict[str, np.ndarray]], int]] = {}
        self._held_steps = 0
        self.evicted = 0  # partial episodes stored early to keep within max_steps * max_senders

    def add(self, msg: ExperienceMsg, chunk: dict[str, np.ndarray]) -> None:
        """``chunk``: `experience_from_msg(msg, ...)`. Raises what `store` raises (the chunk is
        then lost; what is held stays consistent)."""
        n = len(chunk["action"])
        parts, steps = [chunk], n
        held = self._pop(msg.sender)
        if held is not None:
            step, next_t0, earlier, earlier_steps = held
            if (msg.t0 > 0 and (msg.step, msg.t0) == (step, next_t0)
                    and earlier_steps + n <= self._max_steps):
                chunk["first"][0] = earlier[-1]["term"][-1]  # no reset inside the episode
                parts, steps = [*earlier, chunk], earlier_steps + n
            else:  # a gap, or an episode longer than max_steps: end the segment held
                self._join(earlier)
        if msg.ends or steps >= self._max_steps:
            self._join(parts)
            return
        self._held[msg.sender] = (msg.step, msg.t0 + n, parts, steps)
        self._held_steps += steps
        while self._held_steps > self._max_held:  # never the sender just added: steps < max_steps
            oldest = next(iter(self._held))
            self.evicted += 1
            self._join(self._pop(oldest)[2])  # type: ignore[index]

    def flush(self) -> None:
        """Store every episode still held in part (before a checkpoint)."""
        held, self._held, self._held_steps = self._held, {}, 0
        for _, _, parts, _ in held.values():
            self._join(parts)

    @property
    def held_steps(self) -> int:
        return self._held_steps

    def _pop(self, sender: int) -> tuple[int, int, list[dict[str, np.ndarray]], int] | None:
        held = self._held.pop(sender, None)
        if held is not None:
            self._held_steps -= held[3]
        return held

    def _join(self, parts: list[dict[str, np.ndarray]]) -> None:
        self._store({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


# --- rollouts -----------------------------------------------------------------------------------

def rollout_msg(rollout: Mapping[str, np.ndarray], *, sender: int, seq: int, step: int,
                score: float, float16: bool) -> RolloutMsg:
    """One `rollouts.from_trajectory` dict (deter (H+1, R), stoch (H+1, C), action (H,),
    logits/avail (H, A), reward (H,), discount (H,)) as a message."""
    n_actions = rollout["logits"].shape[-1]
    return RolloutMsg(
        sender=sender, seq=seq, step=step, n_actions=int(n_actions), score=float(score),
        actions=pack_actions(rollout["action"], n_actions),
        avail=pack_bits(rollout["avail"].astype(bool)),
        logits=to_wire_float(rollout["logits"], float16),
        rewards=rollout["reward"].astype(np.float32),
        discounts=rollout["discount"].astype(np.float32),
        h=to_wire_float(rollout["deter"], float16),
        z=rollout["stoch"].astype(np.uint8))


def rollout_from_msg(msg: RolloutMsg, spec: EnvSpec, model: ModelConfig,
                     horizon: int) -> dict[str, np.ndarray]:
    """An `ImaginationBuffer` rollout, checked against this agent's sizes and horizon."""
    a = spec.n_actions
    _check(msg.n_actions == a, "spec", f"n_actions {msg.n_actions} != {a}")
    _check(msg.actions.shape == (horizon,), "shape", f"{msg.actions.shape[0]} actions, expected {horizon}")
    _check(msg.h.shape == (horizon + 1, model.deter), "shape", f"h {msg.h.shape}, R={model.deter}")
    _check(msg.z.shape == (horizon + 1, model.n_categoricals), "shape",
           f"z {msg.z.shape}, C={model.n_categoricals}")
    _check(msg.logits.shape == (horizon, a), "shape", f"logits {msg.logits.shape}, A={a}")
    _check(bool(np.all(msg.z < model.n_classes)), "range", f"z class index >= K={model.n_classes}")
    action, avail = _actions(msg.actions, a), _avail(msg.avail, horizon, a)
    _taken_available(action, avail)
    logits = msg.logits.astype(np.float32)
    # -inf is a masked (unavailable) action; any other inf or NaN turns the importance ratio
    # into inf or NaN and the whole PPO batch with it.
    _check(bool(np.all(np.isfinite(logits[avail]))), "nonfinite", "logits of available actions hold inf or NaN")
    _check(bool(np.all(np.isfinite(logits) | (logits == -np.inf))), "nonfinite",
           "logits of unavailable actions hold NaN or +inf")
    discount = _finite("discounts", msg.discounts)
    _check(bool(np.all((discount >= 0) & (discount <= 1))), "range", "discounts outside [0, 1]")
    return {"deter": _finite("h", msg.h), "stoch": msg.z.astype(np.uint8), "action": action,
            "logits": logits, "avail": avail, "reward": _rewards(msg.rewards), "discount": discount}


# --- parameters (centralized) -----------------------------------------------------------------

# What an acting agent runs: the posterior path of the RSSM (act_step) and the actor. The prior,
# decoder, predictors and critic stay with the learner, so they never cost bytes.
ACTING_WM_MODULES = ("encoder", "rnn_in", "rnn", "post_net")


ACTOR_UPDATES = "meta.actor_updates"  # (1,) int64: the learner's actor updates so far


def acting_params(wm: torch.nn.Module, actor: torch.nn.Module, actor_updates: int) -> dict[str, np.ndarray]:
    """Named arrays of the acting networks: float32 ``wm.<name>`` and ``actor.<name>``, and
    the learner's actor-update count (agents that act greedily only once the actor trained)."""
    out = {f"wm.{k}": v.detach().cpu().numpy() for k, v in wm.state_dict().items()
           if k.split(".")[0] in ACTING_WM_MODULES}
    out.update({f"actor.{k}": v.detach().cpu().numpy() for k, v in actor.state_dict().items()})
    out[ACTOR_UPDATES] = np.array([actor_updates], np.int64)
    return out


def load_acting_params(msg: ParamsMsg, wm: torch.nn.Module, actor: torch.nn.Module) -> int:
    """Copy a `ParamsMsg` into the acting networks and return its actor-update count;
    `WireError` unless every name and shape matches exactly (nothing is loaded then)."""
    targets = {f"wm.{k}": v for k, v in wm.state_dict().items() if k.split(".")[0] in ACTING_WM_MODULES}
    targets.update({f"actor.{k}": v for k, v in actor.state_dict().items()})
    _check(set(msg.arrays) == set(targets) | {ACTOR_UPDATES}, "spec",
           f"params names differ ({len(msg.arrays)} arrays, expected {len(targets) + 1})")
    updates = msg.arrays[ACTOR_UPDATES]
    _check(updates.shape == (1,) and updates.dtype.kind in "iu" and int(updates[0]) >= 0, "range",
           f"{ACTOR_UPDATES} {updates.dtype}{updates.shape}")
    for name, target in targets.items():
        value = msg.arrays[name]
        _check(tuple(value.shape) == tuple(target.shape), "shape", f"{name} {value.shape}")
        _finite(name, value)
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(torch.as_tensor(msg.arrays[name].astype(np.float32)))
    return int(updates[0])


__all__ = [
    "ACTOR_UPDATES",
    "EpisodeJoiner",
    "WireError",
    "acting_params",
    "experience_from_msg",
    "experience_msg",
    "link_budget",
    "load_acting_params",
    "rollout_from_msg",
    "rollout_msg",
]
