"""Replay buffers in flat numpy arrays: real transitions (own and peer-shared) and received
imagined rollouts. numpy only: importing this module never imports torch.

Sampling policy (DreamerV2's, not MAMBA's within-episode one): a sampled sequence is any
contiguous window of stored transitions and may run from one episode or received chunk into the
next; `first[t]` is True wherever the RSSM must reset, so no state ever carries across a
boundary. This uses every stored step (episodes or chunks shorter than `seq_len` included),
and a window never wraps from the newest transition back to the oldest.

Stored `first` means "reset point": an episode start (the caller's `first`), the first step of
every received chunk (its state before the chunk is unknown), and the first own step after a
chunk (the own episode it continues was interrupted in storage).

Returns-to-go: with a ``gamma``, a buffer also keeps `ret[t]`, the discounted return from step t to
the end of its segment, r_t + gamma r_{t+1} + ..., filled in when the segment ends in a
termination (`term`); NaN where that has not happened in storage (an episode cut by the time
limit, a chunk that stops mid-episode, an episode still being written). Self-imitation uses it:
a window's own rewards cannot carry a win back to a decision made before the window starts.

Shape notes: N capacity, T time, D obs size, A actions, B batch, H horizon, R deterministic
size, C categoricals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# float16 keeps values in [-1, 1] (SMAC observations) to within 2**-12 ~= 2.4e-4 absolute
# (half an ulp at [0.5, 1)); elsewhere its relative error is <= 2**-11. The default float32 is
# exact and a full paper buffer on 2s3z still fits in ~85 MB, so float16 is opt-in.
FLOAT16_MAX_ABS_ERROR = 2.0**-12
_OBS_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
_FORMAT = 2  # version of the saved-file layout; 2 added `ret`, which loading recomputes (format 1 loads)


def _action_dtype(n_actions: int) -> np.dtype:
    if n_actions <= 256:
        return np.dtype(np.uint8)
    if n_actions <= 65536:
        return np.dtype(np.uint16)
    raise ValueError(f"n_actions must be <= 65536, got {n_actions}")


def _pack(avail: np.ndarray) -> np.ndarray:
    """(..., A) bool -> (..., ceil(A/8)) uint8: exact, 8x smaller than bool."""
    return np.packbits(np.asarray(avail, dtype=bool), axis=-1)


@dataclass(frozen=True)
class WindowPriority:
    """How an own batch's windows are drawn (`EpisodeReplay.sample`): the last
    ``round(B * fraction)`` windows each start at a uniform one of the ``seq_len + lead``
    positions that put them at most ``lead`` steps before a transition drawn with probability
    proportional to |reward|^``power``; the rest are uniform. The default draws every window
    uniformly (the paper's replay). Squared by default, not |r|: on 2s_vs_1sc the per-hit
    rewards (0.01-1.25) add up to most of a lost episode's return, and only the square lets a
    rare win step (~8.3) stand out from them (one win ~ 11 lost episodes' worth, against 0.8 by
    |r|). But a full buffer holds ~1,700 lost episodes, so one win still gets ~1% of the draws;
    power 4 gives it ~60% (docs/PERFORMANCE.md)."""

    fraction: float = 0.0  # train.reward_priority
    lead: int = 0  # train.priority_lead
    power: float = 2.0  # train.priority_power

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"reward_priority (the prioritised fraction) must be in [0, 1], got {self.fraction}")
        if self.lead < 0:
            raise ValueError(f"priority_lead must be >= 0, got {self.lead}")
        if not self.power > 0.0:
            raise ValueError(f"priority_power must be > 0, got {self.power}")


UNIFORM = WindowPriority()


class EpisodeReplay:
    """A ring buffer of `capacity` transitions; the oldest are evicted when full."""

    _ARRAYS = ("obs", "action", "reward", "term", "avail", "first", "episode")  # what a load restores

    def __init__(self, capacity: int, obs_dim: int, n_actions: int, *,
                 obs_dtype: type | np.dtype = np.float32, gamma: float | None = None) -> None:
        if capacity <= 0 or obs_dim <= 0 or n_actions <= 0:
            raise ValueError(f"capacity, obs_dim and n_actions must be > 0, got "
                             f"{capacity}, {obs_dim}, {n_actions}")
        if np.dtype(obs_dtype) not in _OBS_DTYPES:
            raise ValueError(f"obs_dtype must be float32 or float16, got {np.dtype(obs_dtype)}")
        if gamma is not None and not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.capacity, self.obs_dim, self.n_actions = capacity, obs_dim, n_actions
        self.gamma = gamma
        self.obs = np.zeros((capacity, obs_dim), np.dtype(obs_dtype))  # (N, D)
        self.action = np.zeros(capacity, _action_dtype(n_actions))  # (N,)
        self.reward = np.zeros(capacity, np.float32)  # (N,)
        self.term = np.zeros(capacity, bool)  # (N,)
        self.avail = np.zeros((capacity, (n_actions + 7) // 8), np.uint8)  # (N, ceil(A/8)) bits
        self.first = np.zeros(capacity, bool)  # (N,) reset points, see the module docstring
        self.episode = np.zeros(capacity, np.int64)  # (N,) segment id, +1 at every reset point
        self.ret = np.full(capacity, np.nan, np.float32)  # (N,) return-to-go, see the module docstring
        self._next = 0  # physical index the next transition goes to
        self._size = 0
        self._episodes = 0  # ids handed out so far
        self._after_chunk = True  # the next own step cannot continue what is stored before it
        # Cumulative |reward|^power in logical order for `reward_priority` draws, built on the
        # first draw after a write: a round's several batches share one O(N) pass.
        self._reward_cdf: tuple[float, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self._ARRAYS) + self.ret.nbytes

    def _write(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, term: np.ndarray,
               avail: np.ndarray, first: np.ndarray) -> None:
        """Store (T, ...) arrays whose `first` is already final; T <= capacity."""
        t = len(first)
        shapes = {"obs": (obs.shape, (t, self.obs_dim)), "action": (action.shape, (t,)),
                  "reward": (reward.shape, (t,)), "term": (term.shape, (t,)),
                  "avail": (avail.shape, (t, self.n_actions))}
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"replay {name} has shape {got}, expected {want}")
        idx = (self._next + np.arange(t)) % self.capacity
        if np.any(action >= self.n_actions) or np.any(action < 0):
            raise ValueError(f"actions must be in [0, {self.n_actions}), got values in "
                             f"[{action.min()}, {action.max()}]")
        self.obs[idx] = obs
        self.action[idx] = action
        self.reward[idx] = reward
        self.term[idx] = term
        self.avail[idx] = _pack(avail)
        self.first[idx] = first
        self.episode[idx] = self._episodes - 1 + np.cumsum(first)
        self.ret[idx] = np.nan
        self._episodes += int(first.sum())
        self._next = (self._next + t) % self.capacity
        self._size = min(self._size + t, self.capacity)
        self._reward_cdf = None
        self._fill_returns(idx[np.asarray(term, bool)])

    def _fill_returns(self, ends: np.ndarray) -> None:
        """`ret` of the segments that end in a termination at physical indices ``ends``."""
        if self.gamma is not None:
            for end in ends:
                self._fill_segment(int(end))

    def _fill_segment(self, end: int) -> None:
        """`ret` of the segment ending in a termination at physical index ``end``, walking back
        to its first stored step (O(episode length), once per episode)."""
        g, seg = 0.0, self.episode[end]
        for k in range(self._size):
            i = (end - k) % self.capacity
            if self.episode[i] != seg:
                break
            g = float(self.reward[i]) + self.gamma * g
            self.ret[i] = g
            if self.first[i]:
                break

    def add(self, obs: np.ndarray, action: int, reward: float, term: bool, avail: np.ndarray,
            first: bool) -> None:
        """One own transition: `obs` (D,), `avail` (A,); `first` marks an episode start."""
        first = np.array([bool(first) or self._after_chunk])
        self._write(np.asarray(obs)[None], np.asarray([action]), np.array([reward], np.float32),
                    np.array([term], bool), np.asarray(avail)[None], first)
        self._after_chunk = False

    def add_chunk(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, term: np.ndarray,
                  avail: np.ndarray, first: np.ndarray) -> None:
        """A whole received sequence, stored as its own segment: obs (T, D), avail (T, A), the
        rest (T,). Its first step becomes a reset point; `first` inside it is kept."""
        first = np.array(first, dtype=bool)  # a copy: the caller's array is not changed
        if not 0 < len(first) <= self.capacity:
            raise ValueError(f"chunk length must be in [1, capacity={self.capacity}], got {len(first)}")
        first[0] = True
        self._write(np.asarray(obs), np.asarray(action), np.asarray(reward, np.float32),
                    np.asarray(term, bool), np.asarray(avail), first)
        self._after_chunk = True

    def _indices(self, batch_size: int, seq_len: int, rng: np.random.Generator,
                 priority: WindowPriority = UNIFORM) -> np.ndarray:
        """(B, T) physical indices of windows that do not wrap newest -> oldest, drawn as
        ``priority`` says (`WindowPriority`). With the default every window is uniform, the same
        draws as before prioritised replay existed; with a positive fraction but no stored
        reward the prioritised windows are uniform too."""
        if self._size < seq_len:
            raise ValueError(f"cannot sample sequences of {seq_len} steps from {self._size} "
                             f"stored transitions")
        oldest = (self._next - self._size) % self.capacity
        last_start = self._size - seq_len  # logical positions: 0 = oldest stored transition
        n_prio = round(batch_size * priority.fraction)
        starts = rng.integers(0, last_start + 1, size=batch_size - n_prio)
        if n_prio:
            if self._reward_cdf is None or self._reward_cdf[0] != priority.power:
                reward = self.reward[(oldest + np.arange(self._size)) % self.capacity]
                self._reward_cdf = (priority.power,
                                    np.cumsum(np.abs(reward.astype(np.float64)) ** priority.power))
            cdf = self._reward_cdf[1]
            if cdf[-1] > 0.0:
                # as rng.choice(size, p=weight / total) draws: inverse CDF of uniform samples
                key = np.searchsorted(cdf, rng.random(n_prio) * cdf[-1], side="right")
                prio = np.clip(key - rng.integers(0, seq_len + priority.lead, size=n_prio), 0, last_start)
            else:
                prio = rng.integers(0, last_start + 1, size=n_prio)
            starts = np.concatenate([starts, prio])
        return (oldest + starts[:, None] + np.arange(seq_len)) % self.capacity

    def sample(self, batch_size: int, seq_len: int, rng: np.random.Generator, *,
               own: bool = True, priority: WindowPriority = UNIFORM) -> dict[str, np.ndarray]:
        """`SeqBatch(**d)`-compatible arrays: obs (B, T, D) float32, action (B, T) int64,
        reward/term (B, T) float32, avail (B, T, A) bool, first (B, T) bool, own (B,) = `own`,
        ret (B, T) float32 (NaN where unknown). ``priority``: which windows are drawn around
        large rewards (`WindowPriority`)."""
        idx = self._indices(batch_size, seq_len, rng, priority)
        avail = np.unpackbits(self.avail[idx], axis=-1, count=self.n_actions).astype(bool)
        return {"obs": self.obs[idx].astype(np.float32), "action": self.action[idx].astype(np.int64),
                "reward": self.reward[idx], "term": self.term[idx].astype(np.float32),
                "avail": avail, "first": self.first[idx], "own": np.full(batch_size, own),
                "ret": self.ret[idx]}

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """The stored transitions oldest first, plus the sizes and counters to restore them."""
        order = (self._next - self._size + np.arange(self._size)) % self.capacity
        # `ret` is derived (rewards, terminations, gamma): written for inspection, recomputed on load.
        state: dict[str, np.ndarray | int] = {name: getattr(self, name)[order] for name in (*self._ARRAYS, "ret")}
        state.update(format=_FORMAT, capacity=self.capacity, obs_dim=self.obs_dim,
                     n_actions=self.n_actions, episodes=self._episodes,
                     after_chunk=int(self._after_chunk))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a missing key or a mismatched size/dtype raises ValueError."""
        missing = [k for k in (*self._ARRAYS, "format", "capacity", "obs_dim", "n_actions",
                               "episodes", "after_chunk") if k not in state]
        if missing:
            raise ValueError(f"replay state is missing {', '.join(missing)}")
        if int(state["format"]) not in (1, _FORMAT):
            raise ValueError(f"replay state has format {int(state['format'])}, expected {_FORMAT}")
        for key in ("capacity", "obs_dim", "n_actions"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(f"replay state has {key}={int(state[key])}, this buffer has "
                                 f"{getattr(self, key)}")
        size = len(state["first"])
        for name in self._ARRAYS:
            ours, theirs = getattr(self, name), np.asarray(state[name])
            if theirs.dtype != ours.dtype or theirs.shape != (size, *ours.shape[1:]):
                raise ValueError(f"replay state array {name!r} is {theirs.dtype}{list(theirs.shape)}, "
                                 f"expected {ours.dtype}{[size, *ours.shape[1:]]}")
        if size > self.capacity:
            raise ValueError(f"replay state holds {size} transitions, capacity is {self.capacity}")
        for name in self._ARRAYS:
            getattr(self, name)[:size] = state[name]
        self._size, self._next = size, size % self.capacity
        self._episodes, self._after_chunk = int(state["episodes"]), bool(state["after_chunk"])
        self._reward_cdf = None
        self.ret[:] = np.nan  # recomputed with this buffer's gamma, whatever the file holds
        self._fill_returns(np.flatnonzero(self.term[:size]))

    def save(self, path: str | Path) -> None:
        """Write atomically: `<path>.tmp`, fsync, then `os.replace` (a crash leaves the old file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        arrays = {k: np.asarray(v) for k, v in self.state_dict().items()}
        try:
            with tmp.open("wb") as fh:  # a file object: np.savez would append ".npz" to a name
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load(self, path: str | Path) -> None:
        """Load :meth:`save` output; a corrupt or mismatched file raises a one-line ValueError."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                state = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001  zipfile, zlib, format and pickle errors all mean "corrupt"
            raise ValueError(f"corrupt replay file {path}: {' '.join(str(exc).split())}") from None
        try:
            self.load_state_dict(state)
        except (ValueError, TypeError) as exc:  # TypeError: a counter saved as a non-scalar
            raise ValueError(f"bad replay file {path}: {exc}") from None


def sample_mixed(own: EpisodeReplay, shared: EpisodeReplay, batch_size: int, seq_len: int,
                 rng: np.random.Generator, shared_fraction: float,
                 priority: WindowPriority = UNIFORM) -> Any:
    """A `SeqBatch` of `round(batch_size * shared_fraction)` sequences from `shared` (own=False,
    placed last) when it holds at least `seq_len` transitions, the rest from `own` (own=True;
    ``priority`` applies to these only, see `WindowPriority`).

    Returns `dwm_net.learning.types.SeqBatch`; it is imported here, not at module level, because
    that module imports torch and this one must stay importable without it.
    """
    from dwm_net.learning.types import SeqBatch

    if not 0.0 <= shared_fraction <= 1.0:
        raise ValueError(f"shared_fraction must be in [0, 1], got {shared_fraction}")
    n_shared = round(batch_size * shared_fraction) if len(shared) >= seq_len else 0
    parts = [buf.sample(n, seq_len, rng, own=flag, priority=prio)
             for buf, n, flag, prio in ((own, batch_size - n_shared, True, priority),
                                        (shared, n_shared, False, UNIFORM)) if n]
    return SeqBatch(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


class ImaginationBuffer:
    """Received imagined rollouts (Algorithm 2), FIFO-evicted. `take` hands out each rollout
    once, oldest first; `sample` draws any stored one with replacement. One rollout is a dict:
    deter (H+1, R), stoch (H+1, C) class indices, action (H,), logits (H, A), avail (H, A) bool,
    reward (H,), discount (H,). Floats are stored as `float_dtype` (float16 halves the memory;
    masked logits far below its range become -inf, which softmax still maps to 0)."""

    def __init__(self, capacity: int, horizon: int, deter: int, n_categoricals: int,
                 n_classes: int, n_actions: int, *, float_dtype: type | np.dtype = np.float32) -> None:
        if min(capacity, horizon, deter, n_categoricals, n_classes, n_actions) <= 0:
            raise ValueError("ImaginationBuffer sizes must all be > 0")
        if n_classes > 256:
            raise ValueError(f"n_classes must be <= 256 (stored as uint8), got {n_classes}")
        fdt = np.dtype(float_dtype)
        if fdt not in _OBS_DTYPES:
            raise ValueError(f"float_dtype must be float32 or float16, got {fdt}")
        self.capacity, self.horizon, self.n_classes = capacity, horizon, n_classes
        h = horizon
        self._arrays: dict[str, np.ndarray] = {
            "deter": np.zeros((capacity, h + 1, deter), fdt),
            "stoch": np.zeros((capacity, h + 1, n_categoricals), np.uint8),
            "action": np.zeros((capacity, h), _action_dtype(n_actions)),
            "logits": np.zeros((capacity, h, n_actions), fdt),
            "avail": np.zeros((capacity, h, n_actions), bool),
            "reward": np.zeros((capacity, h), np.float32),
            "discount": np.zeros((capacity, h), np.float32),
        }
        self._next = 0
        self._size = 0
        self._fresh = 0  # the newest rollouts that `take` has not handed out yet

    def __len__(self) -> int:
        return self._size

    @property
    def fresh(self) -> int:
        """Rollouts stored and not yet handed out by `take`."""
        return self._fresh

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def add(self, rollout: dict[str, np.ndarray]) -> None:
        """Store one rollout (shapes in the class docstring), evicting the oldest when full."""
        if set(rollout) != set(self._arrays):
            raise ValueError(f"rollout keys are {sorted(rollout)}, expected {sorted(self._arrays)}")
        for name, store in self._arrays.items():
            value = np.asarray(rollout[name])
            if value.shape != store.shape[1:]:
                raise ValueError(f"rollout {name} has shape {value.shape}, expected {store.shape[1:]}")
        if np.any(np.asarray(rollout["stoch"]) >= self.n_classes):
            raise ValueError(f"rollout stoch class indices must be < {self.n_classes}")
        for name, store in self._arrays.items():
            store[self._next] = rollout[name]
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self._fresh = min(self._fresh + 1, self.capacity)  # a full buffer evicts unused ones too

    def take(self, n: int) -> dict[str, np.ndarray]:
        """The oldest ``min(n, fresh)`` rollouts not handed out before, time-major like `sample`;
        each rollout is handed out once."""
        k = min(n, self._fresh)
        idx = (self._next - self._fresh + np.arange(k)) % self.capacity
        self._fresh -= k
        return {name: np.swapaxes(store[idx], 0, 1) for name, store in self._arrays.items()}

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`n` rollouts drawn uniformly with replacement, time-major like `Trajectory`:
        deter (H+1, n, R), stoch (H+1, n, C), action (H, n), logits/avail (H, n, A), ... ."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty ImaginationBuffer")
        idx = rng.integers(0, self._size, size=n)
        return {name: np.swapaxes(store[idx], 0, 1) for name, store in self._arrays.items()}
