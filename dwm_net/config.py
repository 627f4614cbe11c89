"""One typed, frozen config tree for a whole run, plus named presets.

Resolution order in :func:`load_config` (later wins)::

    dataclass defaults  ->  preset  ->  TOML file  ->  "key.path=value" overrides

The dataclass defaults *are* the ``cpu`` preset (``BASE_PRESET``), so ``Config()`` equals
``load_config("cpu")``; a command that names no preset gets ``DEFAULT_PRESET``, ``explore``
(``cpu`` plus the exploration and replay options that got 2s_vs_1sc learned in 15 minutes).
Every error is a :class:`ConfigError` whose message is one line naming the key and what is
valid. Sizes are counts, rates are per gradient step unless a comment says otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

# Mirrors dwm_net.envs.SCENARIOS; repeated here so loading a config never imports the simulator.
SCENARIOS: tuple[str, ...] = ("2s_vs_1sc", "2m_vs_1z", "3m", "2s3z")
# The preset a command gets when it names none: `cpu` plus the options measured to learn
# 2s_vs_1sc within 15 minutes (docs/PERFORMANCE.md); `cpu` without them and `paper` stay one flag away.
DEFAULT_PRESET = "explore"
PRECISIONS = ("float32", "bfloat16", "auto")  # model.precision (dwm_net/learning/nets.py)
BASE_PRESET = "cpu"  # the preset whose values are the dataclass defaults

Backend = Literal["builtin", "sc2"]
ShareMethod = Literal["independent", "centralized", "experience", "rollout", "both"]


class ConfigError(ValueError):
    """A bad config key, value, preset, file or override; the message is always one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# ---------------------------------------------------------------------------------------------
# Field constraints. A field's metadata holds ``check``: ">0", ">=0", ">=2" or an interval such
# as "[0,1]" / "(0,1]"; and optionally ``choices`` for plain strings.


def _f(default: Any, check: str = "", choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"check": check, "choices": choices})


_INTERVAL = re.compile(r"^([\[(])([^,]+),([^\])]+)([\])])$")


def _satisfies(value: float, check: str) -> bool:
    if not check:
        return True
    if check.startswith(">="):
        return value >= float(check[2:])
    if check.startswith(">"):
        return value > float(check[1:])
    m = _INTERVAL.match(check)
    assert m, f"bad constraint {check!r}"
    lo, hi = float(m[2]), float(m[3])
    return (value >= lo if m[1] == "[" else value > lo) and (value <= hi if m[4] == "]" else value < hi)


def _describe(tp: Any, meta: Mapping[str, Any]) -> str:
    """What a valid value looks like, for error messages: 'an int > 0', 'one of: a, b'."""
    if get_origin(tp) is Literal:
        return "one of: " + ", ".join(get_args(tp))
    if meta.get("choices"):
        return "one of: " + ", ".join(meta["choices"])
    if tp is bool:
        return "a bool (true/false/1/0/yes/no)"
    name = {int: "an int", float: "a float", str: "a string"}[tp]
    check = meta.get("check", "")
    if not check:
        return name
    if check.startswith(">"):
        return f"{name} {check[:2] if check[1] == '=' else '>'} {check.lstrip('>=')}"
    return f"{name} in {check.replace(',', ', ')}"


def _bad(key: str, shown: str, tp: Any, meta: Mapping[str, Any]) -> ConfigError:
    return ConfigError(f"bad value for {key}: {shown} (must be {_describe(tp, meta)})")


def _check_value(key: str, value: Any, tp: Any, meta: Mapping[str, Any], shown: str | None = None) -> Any:
    """Validate a native Python value for a field; return it normalised (int -> float for floats)."""
    shown = repr(value) if shown is None else shown
    if get_origin(tp) is Literal:
        if value not in get_args(tp):
            raise _bad(key, shown, tp, meta)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad(key, shown, tp, meta)
        return value
    if tp is str:
        if not isinstance(value, str) or (meta.get("choices") and value not in meta["choices"]):
            raise _bad(key, shown, tp, meta)
        return value
    # bool is an int subclass: reject it explicitly so `hidden = true` is not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(key, shown, tp, meta)
    if tp is int:
        if not isinstance(value, int):
            raise _bad(key, shown, tp, meta)
    else:
        try:
            value = float(value)
        except OverflowError:
            raise _bad(key, shown, tp, meta) from None
        if not math.isfinite(value):
            raise _bad(key, shown, tp, meta)
    if not _satisfies(value, meta.get("check", "")):
        raise _bad(key, shown, tp, meta)
    return value


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _parse_text(key: str, raw: str, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Parse an override's text according to the field's type, then validate it."""
    shown = repr(raw)
    text = raw.strip()
    value: Any = text
    try:
        if tp is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            value = text.lower() in _TRUE
        elif tp is int:
            try:
                value = int(text)
            except ValueError:
                as_float = float(text)  # "1e6" is a handy way to write a step count
                if not as_float.is_integer():
                    raise
                value = int(as_float)
        elif tp is float:
            value = float(text)
    except (ValueError, OverflowError):
        raise _bad(key, shown, tp, meta) from None
    return _check_value(key, value, tp, meta, shown)


# ---------------------------------------------------------------------------------------------
# Bandwidth budgets: "unlimited", "<number><unit>/s" or "<number><unit>/step".

# The grammar of comms.budget.parse_budget, which enforces the budget (this module may not import
# comms; tests/test_budget.py checks that whatever passes here parses there to the same rate),
# except that only the exact word "unlimited" is taken.
_UNITS = {"B": 1.0, "KB": 1e3, "kB": 1e3, "MB": 1e6, "KiB": 1024.0, "MiB": 1024.0**2}
# Case-sensitive on purpose: "Mb/s" usually means megabits, which this format does not accept.
_BUDGET = re.compile(
    r"\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>"
    + "|".join(_UNITS) + r")\s*/\s*(?P<per>s|step)\s*"
)


def parse_budget(s: str, key: str = "comms.budget") -> tuple[float | None, Literal["s", "step"] | None]:
    """``"50KB/s"`` -> ``(50000.0, "s")``; ``"2KB/step"`` -> ``(2000.0, "step")``;
    ``"unlimited"`` -> ``(None, None)``. KB and MB are SI (1 KB = 1000 bytes), KiB and MiB
    binary; the rate must be > 0."""
    if s == "unlimited":
        return None, None
    m = _BUDGET.fullmatch(s) if isinstance(s, str) else None
    if m:
        rate = float(m["num"]) * _UNITS[m["unit"]]
        if rate > 0 and math.isfinite(rate):
            return rate, "s" if m["per"] == "s" else "step"
    raise ConfigError(
        f"bad value for {key}: {s!r} (must be 'unlimited' or <number><unit>/s or "
        f"<number><unit>/step with number > 0 and unit B, KB, MB, KiB or MiB, e.g. '50KB/s', '2KB/step')"
    )


# ---------------------------------------------------------------------------------------------
# The tree.


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


@dataclass(frozen=True)
class _Section:
    """Validates every field against its type and constraint on construction."""

    section: ClassVar[str]

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):
            key = f"{self.section}.{f.name}"
            value = _check_value(key, getattr(self, f.name), hints[f.name], f.metadata)
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class EnvConfig(_Section):
    section: ClassVar[str] = "env"

    scenario: str = _f("2s_vs_1sc", choices=SCENARIOS)  # SMAC map the agents play
    backend: Backend = "builtin"  # "builtin": this project's simulator; "sc2": real StarCraft II


@dataclass(frozen=True)
class ModelConfig(_Section):
    """World model and actor/critic sizes. Every MLP uses ReLU (paper section 5)."""

    section: ClassVar[str] = "model"

    hidden: int = _f(128, ">0")  # width of every MLP hidden layer (units)
    layers: int = _f(2, ">0")  # hidden layers per MLP head (reward, discount, actor, critic, ...)
    deter: int = _f(128, ">0")  # GRU deterministic state h_t size (units)
    n_categoricals: int = _f(16, ">0")  # stochastic latent z_t: this many categorical variables ...
    n_classes: int = _f(16, ">0")  # ... each with this many classes (z_t is n_categoricals*n_classes)
    embed: int = _f(128, ">0")  # observation-encoder output size (units)
    # KL balancing (DreamerV2): weight of KL(sg(posterior) || prior), which trains the prior;
    # 1 - kl_balance weights KL(posterior || sg(prior)), which trains the posterior.
    kl_balance: float = _f(0.8, "[0,1]")
    kl_scale: float = _f(1.0, ">=0")  # multiplier of the KL term in the world-model loss
    free_nats: float = _f(0.0, ">=0")  # KL below this many nats is not penalised (0 = off)
    # KL over the C categoricals: summed (False, DreamerV2) or averaged (True, MAMBA's
    # state_divergence_loss), i.e. C times less pressure on the posterior.
    # Default True: offline on 3m (20k scripted/random steps, cpu preset, 2000 updates) the
    # reward head's correlation with true reward (predicted as in imagination) was 0.68/0.84/0.83/
    # 0.85 at 500/1000/1500/2000 updates vs 0.55/0.73/0.71/0.84 summed, with lower obs loss.
    kl_average: bool = True
    # Weight of the action decoder's loss (paper eq. 1: a_t from (h_t, z_t), a categorical NLL,
    # trained like the observation decoder on the agent's own data only); 0 = no action decoder.
    # `paper` and `mamba` have it (1). `cpu` and `explore` leave it out: every measurement of
    # theirs (docs/PERFORMANCE.md, RESULTS.md) was made without it, and none with it yet.
    action_decoder: float = _f(0.0, ">=0")
    # Precision of the MLPs' matrix products (dwm_net/learning/nets.py): "float32"; "bfloat16"
    # (CPU autocast inside each MLP, float32 out, weights and optimisers float32); "auto":
    # bfloat16 where the CPU has AMX or AVX512-BF16, else float32. The GRU cell is always float32.
    precision: str = _f("float32", choices=PRECISIONS)


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Replay, optimisation and actor-critic settings, per agent."""

    section: ClassVar[str] = "train"

    seq_len: int = _f(20, ">=2")  # length of replayed sequences for world-model training (steps)
    batch_size: int = _f(16, ">0")  # sequences per world-model / actor-critic batch
    horizon: int = _f(15, ">0")  # imagination rollout length H (steps)
    capacity: int = _f(100_000, ">0")  # replay buffer size (transitions); the oldest are evicted
    # World-model gradient steps per training round, each a new batch. 4 (was 2): the actor can
    # only learn what the model predicts, and at 2 steps per ~60-step episode the avail and reward
    # heads still predicted no attack / no hit after 5k env steps (160 updates; offline they need
    # ~400). Measured on 2s_vs_1sc with entropy 0.003 and adv_norm "range": see the commit message.
    wm_epochs: int = _f(4, ">0")
    ac_epochs: int = _f(1, ">0")  # imagination batches per training round for the actor-critic
    ppo_epochs: int = _f(3, ">0")  # PPO passes over each imagined batch
    lr_wm: float = _f(3e-4, ">0")  # Adam learning rate, world model
    lr_actor: float = _f(5e-4, ">0")  # Adam learning rate, actor
    lr_critic: float = _f(5e-4, ">0")  # Adam learning rate, critic
    gamma: float = _f(0.99, "[0,1]")  # discount per env step
    lam: float = _f(0.95, "[0,1]")  # lambda of the lambda-returns
    # Initial entropy-bonus coefficient of the actor loss. 0.003 (was 0.01) goes with adv_norm
    # "range": advantages are then in return units (a hit ~0.6, divided by the return range), not
    # unit std, so 0.01 would outweigh the early, small advantages (measured: actor stayed ~uniform
    # and never took to attacking in 15k steps); MAMBA uses 0.001 with std-normalised advantages.
    entropy: float = _f(0.003, ">=0")
    entropy_decay: float = _f(0.99998, "(0,1]")  # entropy coefficient multiplier per actor update
    # Target for the policy's normalised entropy H / log(#available actions), averaged over
    # imagined states with a choice; 0 = off (fixed coefficient with `entropy_decay`). When on,
    # the coefficient adapts after every actor step (log-coefficient moves by ENTROPY_RATE times
    # the relative shortfall) and `entropy_decay` is not applied: the policy cannot collapse
    # onto whatever an early, noisy model favours, and evaluations are greedy anyway.
    entropy_target: float = _f(0.0, "[0,1]")
    grad_clip_wm: float = _f(100.0, ">0")  # global gradient-norm clip, world model
    grad_clip_policy: float = _f(20.0, ">0")  # global gradient-norm clip, actor and critic
    ppo_clip: float = _f(0.2, ">0")  # PPO ratio clip epsilon
    # How advantages are scaled before PPO. "std": (A - mean) / std over the batch (MAMBA).
    # "range": A / max(1, S), S a running mean of the 5th-95th percentile range of the
    # lambda-returns (DreamerV3). Default "range": with std-normalisation, early imagined rewards
    # are mostly model noise (measured adv std ~0.05-0.1 on 2s_vs_1sc) that gets blown up to unit
    # std, so the policy random-walks into a deterministic one (entropy 1.9 -> 0.03 nats within
    # 5k env steps, before the world model could predict a hit); "range" never amplifies advantages.
    adv_norm: str = _f("range", choices=("std", "range"))
    # World-model updates before the first actor-critic update (rounds before then train the world
    # model only; the actor stays uniform over available actions). Without it the actor collapses
    # onto whatever an untrained model's noise favours before the reward head knows what an attack
    # is worth. 3m, independent, seed 0: with 0, P(attack | attack available) fell 0.2 -> 0.01 and
    # return to ~0.05 by 5k env steps; with 600 (~150 rounds, ~5k steps) the model predicted an
    # attack's reward (0.14 vs 0.02 otherwise) and P(attack | available) rose to 0.9 by 10k steps.
    # paper/mamba: 0 (neither trains the world model alone first; DreamerV2's `pretrain` trains
    # world model and actor together).
    ac_warmup: int = _f(600, ">=0")
    # Which actions imagination lets the actor take: "sample" draws each action's availability
    # from the avail head (MAMBA's rollout_policy); "threshold" allows those with p >= 0.5.
    # Not conclusive either way: centralized on 3m, 15k env steps, training win rate over the last
    # 1.5k steps: sample 0.16 (seed 0) / 0.89 (seed 1), threshold 0.57 / 0.98; over the whole run
    # seed 1 had sample 0.31, threshold 0.25. The default stays MAMBA's.
    imagine_avail: str = _f("sample", choices=("sample", "threshold"))
    # Exploration noise on top of the sampled policy, in training episodes only (evaluation is
    # greedy): with probability `explore_eps` an agent takes a uniformly random available action
    # instead (MAMBA's EXPL_NOISE, 0 there), and a deviation is repeated on the next step with
    # probability `explore_repeat` while it stays available, so noise can make the several
    # consecutive moves that a retreat out of a weapon's range takes (docs/kite_window.py, table
    # 3). The world model learns from any data; the actor learns only in imagination, so the
    # noise biases nothing it is trained on. 0 / 0 = off (every preset).
    explore_eps: float = _f(0.0, "[0,1]")
    explore_repeat: float = _f(0.0, "[0,1)")
    # Fraction of training episodes that get that noise, spread evenly (episode k is noisy when
    # floor((k+1)f) > floor(kf)), so every agent of a run picks the same episodes without
    # talking. The rest play the sampled policy alone: a manoeuvre that needs exact timing (the
    # retreat) is broken by ~10 random actions per noisy episode, so with noise on every episode
    # a policy that wins greedily never sees itself win in training (docs/PERFORMANCE.md: 7 of 10
    # evaluations won, 0 of 82 training episodes around them). 1 = every episode.
    explore_episodes: float = _f(1.0, "[0,1]")
    # How the training episodes without that noise pick actions: "sample" from the policy (the
    # paper, MAMBA) or "greedy", the most likely action, as evaluations do. The sampled policy
    # at 0.05-0.5 nats still deviates a few times per episode, enough to break a retreat's
    # timing: around the near-wins of docs/PERFORMANCE.md greedy evaluations won 6-7 of 10 while
    # sampled and noisy training episodes won 0 of 82, so the world model and critic never saw
    # the policy's own win. Greedy plain episodes put what the evaluations do into replay.
    # Until the actor's first update plain episodes sample (argmax of an untrained actor would
    # repeat one action).
    plain_policy: str = _f("sample", choices=("sample", "greedy"))
    # Acting (training episodes and evaluations) uses an exponential moving average of the
    # actor's weights, avg <- d * avg + (1 - d) * actor after every actor step, d this value;
    # imagination and PPO train the actor itself. 0 = off (every preset). Why: PPO moves action
    # probabilities by up to the clip per update, so where the policy is unsure the greedy
    # action flips from one update to the next; a run whose evaluation won 8 of 10 (40 of 50 on
    # that checkpoint) won 0 of 30 two actor updates later (docs/policy_margin.py).
    actor_ema: float = _f(0.0, "[0,1)")
    # Fraction of each own replay batch (world-model training and imagination starts) drawn as
    # windows around a transition picked with probability proportional to its reward squared;
    # the rest are uniform. A departure from the paper (uniform replay) for the rare, decisive
    # rewards of a win: the noise runs of docs/PERFORMANCE.md won 7-8 training episodes each
    # and learned nothing from them, a few steps among 100k. 0 = off (every preset).
    reward_priority: float = _f(0.0, "[0,1]")
    # How many steps before that transition a prioritised window may lie (its start is uniform
    # over the seq_len + lead positions that end at most `lead` steps before it). 0: the window
    # holds it (as before). On 2s_vs_1sc the decisive retreat comes 20-25 steps before the win,
    # so with lead 0 and 20-step windows no prioritised window ever shows the two together.
    priority_lead: int = _f(0, ">=0")
    # The exponent p of the draw's |reward|^p. 2 (every preset): see `EpisodeReplay._indices`.
    # A full buffer holds ~1,700 lost 2s_vs_1sc episodes, whose squared hit rewards leave one
    # win step ~1% of the prioritised draws; with 4 it gets ~60%, with 3 ~15%.
    priority_power: float = _f(2.0, ">0")
    # Weight of a self-imitation loss (Oh et al. 2018, "Self-Imitation Learning") on real
    # experience, added after each actor-critic update: on the own replay windows imagination
    # starts from, G_t is the episode's real discounted return-to-go where the episode ended in
    # replay (else the window's, bootstrapped with the critic where the window or episode is
    # cut; before 2026-11-27 evening always the window's, which stops a win's credit at the
    # window's start), and where it beats the critic (A = G_t - V(s_t) > 0) the
    # actor raises log pi(a_t | s_t) in proportion to A (scaled as PPO's advantages are) and the
    # critic is pulled up toward G_t; where it does not, nothing. A departure from the paper
    # (the actor learns in imagination only) for wins that imagination does not carry back to
    # the decision: runs with 7-16 winning training episodes each learned nothing from them
    # (docs/PERFORMANCE.md). 0 = off (every preset).
    self_imitation: float = _f(0.0, ">=0")
    train_every: int = _f(1, ">0")  # episodes between training rounds
    prefill: int = _f(500, ">=0")  # env steps collected before the first training round

    def noisy_episode(self, k: int) -> bool:
        """Whether training episode ``k`` (0-based) gets the ``explore_eps`` noise: by its index
        alone (``explore_episodes``), so every agent of a run, and the env host's log, agree."""
        f = self.explore_episodes
        return self.explore_eps > 0.0 and math.floor((k + 1) * f) > math.floor(k * f)


@dataclass(frozen=True)
class ShareConfig(_Section):
    """What agents share and how much (paper section 4)."""

    section: ClassVar[str] = "share"

    method: ShareMethod = "experience"  # experience: RSSM+Predictors; rollout: Actor-Critic
    beta: float = _f(0.01, "[0,1]")  # target fraction of samples shared (Gaussian selection)
    window: int = _f(1500, ">=2")  # K: sliding window of recent losses for mean/std (samples)
    chunk_len: int = _f(20, ">=2")  # length of one shared experience chunk (steps)
    # centralized: training rounds between the learner's parameter broadcasts to the agents
    params_every: int = _f(1, ">0")


@dataclass(frozen=True)
class CommsConfig(_Section):
    """ZeroMQ links between agent processes."""

    section: ClassVar[str] = "comms"

    budget: str = "unlimited"  # outgoing bytes per agent: "unlimited", "50KB/s", "2KB/step"
    # Token-bucket depth (bytes): the most sent at once after idling. A message larger than this
    # can never go out under a finite budget, so keep it above the largest message.
    burst_bytes: int = _f(65_536, ">0")
    queue_size: int = _f(256, ">0")  # outgoing messages buffered per agent; the oldest are dropped
    max_age_s: float = _f(30.0, ">0")  # messages older than this are dropped unsent (seconds)
    heartbeat_s: float = _f(1.0, ">0")  # interval between liveness heartbeats (seconds)
    heartbeat_misses: int = _f(3, ">0")  # a peer missing this many heartbeats is considered gone
    float16: bool = False  # send float payloads as float16, halving their bytes

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_budget(self.budget)


@dataclass(frozen=True)
class RunConfig(_Section):
    section: ClassVar[str] = "run"

    seed: int = _f(0, ">=0")  # base seed; per-agent seeds derive from it (dwm_net.seeding)
    steps: int = _f(50_000, ">0")  # total env steps of the run
    eval_every: int = _f(5_000, ">=0")  # env steps between greedy evaluations (0 = never)
    eval_episodes: int = _f(10, ">0")  # episodes per evaluation
    checkpoint_every: int = _f(10_000, ">=0")  # env steps between checkpoints (0 = never)


SECTIONS: dict[str, type[_Section]] = {
    cls.section: cls for cls in (EnvConfig, ModelConfig, TrainConfig, ShareConfig, CommsConfig, RunConfig)
}


@dataclass(frozen=True)
class Config:
    """A whole run's configuration. ``preset`` records which preset it was built from."""

    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    share: ShareConfig = field(default_factory=ShareConfig)
    comms: CommsConfig = field(default_factory=CommsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = BASE_PRESET  # the dataclass defaults are this preset's values

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"bad value for {name}: must be a {cls.__name__}")
        if not isinstance(self.preset, str) or not self.preset:
            raise ConfigError(f"bad value for preset: {self.preset!r} (must be a non-empty string)")
        # Cross-field rules: a buffer must hold at least one sampled sequence / shared chunk.
        if self.train.capacity < self.train.seq_len:
            raise ConfigError(
                f"bad value for train.capacity: {self.train.capacity} "
                f"(must be >= train.seq_len = {self.train.seq_len})"
            )
        if self.train.capacity < self.share.chunk_len:
            raise ConfigError(
                f"bad value for train.capacity: {self.train.capacity} "
                f"(must be >= share.chunk_len = {self.share.chunk_len})"
            )


# ---------------------------------------------------------------------------------------------
# Presets: a description and nested overrides on the dataclass defaults.


@dataclass(frozen=True)
class Preset:
    description: str
    overrides: Mapping[str, Mapping[str, Any]]


PRESETS: dict[str, Preset] = {
    # Paper section 5 ("Implementation details"), exactly. Values the text does not state (MLP
    # depth, GRU/embed size, gamma, lambda, PPO epochs/clip, prefill, KL balance) come from MAMBA,
    # which the paper says it builds on; the KL's reduction comes from eq. 1 (below).
    "paper": Preset(
        "paper section 5: hidden 256, 32x32 latents, seq 20, horizon 15, batch 40, 250k replay",
        {
            "model": {"hidden": 256, "layers": 2, "deter": 256, "n_categoricals": 32, "n_classes": 32,
                      "embed": 256, "kl_balance": 0.8, "kl_scale": 1.0, "free_nats": 0.0,
                      # Not from MAMBA, which averages over the categoricals (`mamba`): eq. 1's
                      # D_KL is the KL of the whole latent z_t, for independent categoricals the
                      # sum over them, as DreamerV2 computes it.
                      "kl_average": False,
                      "action_decoder": 1.0},  # eq. 1's action decoder
            "train": {"seq_len": 20, "horizon": 15, "capacity": 250_000, "wm_epochs": 5, "ac_epochs": 4,
                      "ppo_epochs": 5, "batch_size": 40, "entropy": 0.01, "entropy_decay": 0.99998,
                      "grad_clip_wm": 100.0, "grad_clip_policy": 20.0,
                      # 1e-6 is the paper's text; it looks low next to MAMBA's 5e-4 but is kept.
                      "lr_actor": 1e-6, "lr_critic": 1e-4, "lr_wm": 3e-4,
                      "gamma": 0.99, "lam": 0.95, "ppo_clip": 0.2, "prefill": 100, "adv_norm": "std",
                      "ac_warmup": 0},
            "share": {"window": 1500, "chunk_len": 20},
        },
    ),
    # MAMBA (github.com/jbr-ai-labs/mamba, commit 4a29498):
    #   configs/dreamer/DreamerAgentConfig.py: HIDDEN=MODEL_HIDDEN=EMBED=256, N_CATEGORICALS=32,
    #     N_CLASSES=32, DETERMINISTIC=256, *_LAYERS=2, GAMMA=0.99, DISCOUNT_LAMBDA=0.95
    #   configs/dreamer/DreamerLearnerConfig.py: MODEL_LR=2e-4, ACTOR_LR=5e-4, VALUE_LR=5e-4,
    #     CAPACITY=500000, MIN_BUFFER_SIZE=100, MODEL_EPOCHS=1, EPOCHS=1, PPO_EPOCHS=5,
    #     MODEL_BATCH_SIZE=BATCH_SIZE=40, SEQ_LENGTH=50, N_SAMPLES=1 (train after every rollout),
    #     GRAD_CLIP=100, GRAD_CLIP_POLICY=100, HORIZON=15, ENTROPY=0.001, ENTROPY_ANNEALING=0.99998
    #   agent/optim/utils.py: ppo_loss eps=0.2; state_divergence_loss balance=0.2 on the
    #     posterior-training term, i.e. 0.8 on the prior term; no free nats, KL unscaled; the KL
    #     is summed over classes, then averaged over categoricals (`.mean(-1)`): kl_average.
    #   (DreamerControllerConfig.py holds only exploration noise, 0, which has no field here.)
    # MAMBA's dense heads use ELU; this project uses ReLU everywhere, as the paper states.
    "mamba": Preset(
        "MAMBA's published DreamerLearnerConfig values (seq 50, 500k replay, lr 2e-4/5e-4/5e-4)",
        {
            "model": {"hidden": 256, "layers": 2, "deter": 256, "n_categoricals": 32, "n_classes": 32,
                      "embed": 256, "kl_balance": 0.8, "kl_scale": 1.0, "free_nats": 0.0,
                      "kl_average": True, "action_decoder": 1.0},
            "train": {"seq_len": 50, "batch_size": 40, "horizon": 15, "capacity": 500_000,
                      "wm_epochs": 1, "ac_epochs": 1, "ppo_epochs": 5,
                      "lr_wm": 2e-4, "lr_actor": 5e-4, "lr_critic": 5e-4, "gamma": 0.99, "lam": 0.95,
                      "entropy": 0.001, "entropy_decay": 0.99998, "grad_clip_wm": 100.0,
                      "grad_clip_policy": 100.0, "ppo_clip": 0.2, "train_every": 1, "prefill": 100,
                      "adv_norm": "std",  # agent/optim/utils.py: advantage() = (A - mean) / std
                      "ac_warmup": 0},
        },
    ),
    # The dataclass defaults: half-width nets, 16x16 latents, batch 16, 4 world-model steps and one
    # imagination batch per round, so two agent processes on 2 CPU cores learn 2s_vs_1sc in
    # minutes. Learning rates are MAMBA's (the paper's 1e-6 actor rate is too slow for short runs).
    "cpu": Preset("sized to learn on 2 CPU cores in minutes (hidden 128, 16x16 latents); the paper's algorithm "
                  "without the action decoder", {}),
    # The default (DEFAULT_PRESET): `cpu` plus the off-by-default options that got 2s_vs_1sc's
    # retreat learned within 15 minutes (docs/PERFORMANCE.md, "Self-imitation of whole-episode
    # returns": 5 of 9 experience-sharing seeds, against 0 of 6 with `cpu`): exploration noise on
    # half the training episodes, the other half greedy, reward-prioritised replay whose windows
    # may lead up to the reward, a 25-step imagination horizon and self-imitation of real episode
    # returns. Departures from the paper (`cpu` and `paper` are without them); made the default
    # after 3m centralized at 15k steps ended no worse over 6 seeds (8, 20, 20, 11, 20, 20 of 20
    # against cpu's 20, 19, 20, 0, 12, 0) and 2m_vs_1z and 2s_vs_1sc independent showed no loss.
    "explore": Preset(
        "cpu + exploration noise, greedy training episodes, reward-prioritised replay, horizon 25, self-imitation, "
        "bfloat16 products on CPUs with AMX or AVX512-BF16",
        {
            # bfloat16 products where the CPU has AMX or AVX512-BF16 (else float32): actor-critic
            # updates 1.6x as fast with AMX, 1.35x with AVX512-BF16 on an AMD Zen 4
            # (docs/PERFORMANCE.md, "bfloat16 products"); a numerics change, so
            # `cpu` and `paper` keep float32.
            "model": {"precision": "auto"},
            "train": {"explore_eps": 0.1, "explore_repeat": 0.5, "explore_episodes": 0.5,
                      "plain_policy": "greedy", "reward_priority": 0.5, "priority_lead": 20,
                      "horizon": 25, "self_imitation": 3.0},
            # A run long enough to get there: the seeds that reached 80% did so at 50k-98k env
            # steps, and `cpu`'s 50k would end most runs of the default command before then.
            "run": {"steps": 100_000},
        },
    ),
    # Everything minimal so a whole multi-process run trains in seconds in tests.
    "tiny": Preset(
        "for tests: minimal sizes so a multi-process run finishes in seconds",
        {
            "model": {"hidden": 16, "layers": 1, "deter": 16, "n_categoricals": 4, "n_classes": 4,
                      "embed": 16},
            "train": {"seq_len": 8, "batch_size": 4, "horizon": 4, "capacity": 2000, "wm_epochs": 1,
                      "ac_epochs": 1, "ppo_epochs": 1, "prefill": 16, "ac_warmup": 0},
            "share": {"window": 50, "chunk_len": 8},
            "run": {"steps": 200, "eval_every": 100, "eval_episodes": 1, "checkpoint_every": 0},
        },
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


# ---------------------------------------------------------------------------------------------
# Building configs from nested plain data.

_Data = dict[str, dict[str, Any]]


def _key_error(key: str) -> ConfigError:
    section, dot, name = key.partition(".")
    if section not in SECTIONS:
        close = difflib.get_close_matches(section, SECTIONS, n=1)
        hint = f"did you mean {close[0] + dot + name!r}? " if close else ""
        what = "key" if dot else "section"
        return ConfigError(f"unknown config {what} {key!r} ({hint}valid sections: {', '.join(SECTIONS)})")
    names = [f.name for f in fields(SECTIONS[section])]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {section + '.' + close[0]!r}? " if close else ""
    return ConfigError(f"unknown config key {key!r} ({hint}valid keys in {section}: {', '.join(names)})")


def _field_of(key: str) -> tuple[str, str, Any, Mapping[str, Any]]:
    """Split ``section.field`` and return its type and metadata, or raise a suggestion."""
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    match = [f for f in fields(cls) if f.name == name] if cls else []
    if not match:
        raise _key_error(key)
    return section, name, _hints(cls)[name], match[0].metadata


def _set(data: _Data, key: str, value: Any, *, text: bool = False) -> None:
    section, name, tp, meta = _field_of(key)
    data[section][name] = _parse_text(key, value, tp, meta) if text else _check_value(key, value, tp, meta)


def _apply_nested(data: _Data, nested: Mapping[str, Any], where: str) -> None:
    """Apply ``{section: {field: value}}`` (from a preset, TOML or JSON); ``preset`` is skipped."""
    for section, values in nested.items():
        if section == "preset":
            continue
        if section not in SECTIONS:
            raise _key_error(section)
        if not isinstance(values, Mapping):
            raise ConfigError(f"config section {section!r} in {where} must be a table of key = value")
        for name, value in values.items():
            _set(data, f"{section}.{name}", value)


def _build(data: _Data, preset: str) -> Config:
    return Config(**{s: cls(**data[s]) for s, cls in SECTIONS.items()}, preset=preset)


def _defaults() -> _Data:
    return {s: dataclasses.asdict(cls()) for s, cls in SECTIONS.items()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:  # message carries "(at line N, column M)"
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def load_config(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Resolve defaults -> preset -> TOML ``file`` -> ``key.path=value`` overrides.

    The preset is ``preset`` if given, else the file's top-level ``preset = "..."`` key, else
    ``DEFAULT_PRESET`` (``explore``). TOML sections are named like the config sections
    (``[model]``, ``hidden = 128``).
    """
    table = _read_toml(Path(file)) if file is not None else {}
    for key, value in table.items():
        if key != "preset" and key not in SECTIONS and not isinstance(value, dict):
            owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in fields(cls)}]
            hint = f"did you mean {key!r} under [{owners[0]}]? " if owners else ""
            raise ConfigError(f"unknown top-level key {key!r} in {file} ({hint}valid: preset, "
                              f"and sections {', '.join(SECTIONS)})")
    if preset is None:
        preset = table.get("preset", DEFAULT_PRESET)
        if not isinstance(preset, str):
            raise ConfigError(f"bad value for preset in {file}: {preset!r} (must be a string)")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} (choose from: {', '.join(PRESETS)})")

    data = _defaults()
    _apply_nested(data, PRESETS[preset].overrides, f"preset {preset!r}")
    _apply_nested(data, table, str(file))
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        if key == "preset":
            raise ConfigError("override 'preset' is not allowed (select the preset with --preset, "
                              "or load_config's preset argument)")
        _set(data, key, value, text=True)
    return _build(data, preset)


def replace(cfg: Config, **changes: Any) -> Config:
    """A copy of ``cfg`` with dotted keys changed: ``replace(cfg, **{"model.hidden": 64})``."""
    data = {s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS}
    for key, value in changes.items():
        _set(data, key, value)
    return _build(data, cfg.preset)


# ---------------------------------------------------------------------------------------------
# JSON: exact round trip (floats use repr; every field is a scalar).


def to_dict(cfg: Config) -> dict[str, Any]:
    return {"preset": cfg.preset, **{s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS}}


def to_json(cfg: Config) -> str:
    return json.dumps(to_dict(cfg), indent=2)


def from_json(s: str) -> Config:
    """Parse :func:`to_json` output. Missing keys take the dataclass defaults; unknown keys fail."""
    try:
        obj = json.loads(s)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid config JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ConfigError("invalid config JSON: top level must be an object of sections")
    preset = obj.get("preset", BASE_PRESET)  # missing keys take the dataclass defaults, cpu's
    if not isinstance(preset, str):
        raise ConfigError(f"bad value for preset: {preset!r} (must be a string)")
    data = _defaults()
    _apply_nested(data, obj, "JSON")
    return _build(data, preset)


def save_json(cfg: Config, path: str | Path) -> None:
    """Write atomically (temp file in the same directory, then ``os.replace``)."""
    from dwm_net.runlog import write_atomic

    text = to_json(cfg) + "\n"
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def load_json(path: str | Path) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    return from_json(text)


__all__ = [
    "BASE_PRESET",
    "DEFAULT_PRESET",
    "PRECISIONS",
    "PRESETS",
    "SCENARIOS",
    "SECTIONS",
    "CommsConfig",
    "Config",
    "ConfigError",
    "EnvConfig",
    "ModelConfig",
    "Preset",
    "RunConfig",
    "ShareConfig",
    "TrainConfig",
    "from_json",
    "load_config",
    "load_json",
    "parse_budget",
    "preset_names",
    "replace",
    "save_json",
    "to_dict",
    "to_json",
]
