"""Compact payload encodings: the sharing budget is in bytes, so send as few as the data needs.

- availability masks as bits: (..., A) bool -> (..., ceil(A/8)) uint8 (`np.packbits`, big bit
  order along the last axis);
- actions as the smallest unsigned int holding 0..n_actions-1;
- categorical latents as class indices: one-hot (..., C, K) -> (..., C) uint8 (K <= 256);
- continuous fields optionally as float16 (clipped to its finite range, about 3 significant
  digits).

`naive_experience` is the uncompressed baseline (float32 everything, one-hot actions and latents)
that the comms benchmark compares against.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from comms.codec import encode, wire_size
from comms.messages import ExperienceMsg, ParamsMsg

FLOAT16_MAX = float(np.finfo(np.float16).max)


def pack_bits(mask: np.ndarray) -> np.ndarray:
    """(..., A) bool -> (..., ceil(A/8)) uint8."""
    return np.packbits(np.asarray(mask, dtype=bool), axis=-1)


def unpack_bits(packed: np.ndarray, n: int) -> np.ndarray:
    """(..., ceil(n/8)) uint8 -> (..., n) bool."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, count=n).astype(bool)


def action_dtype(n_actions: int) -> np.dtype:
    """Smallest unsigned int dtype holding every action index 0..n_actions-1."""
    return np.min_scalar_type(max(n_actions - 1, 0))


def pack_actions(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """(...) integer actions -> the same in `action_dtype(n_actions)`; rejects out-of-range."""
    actions = np.asarray(actions)
    if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
        raise ValueError(f"actions must lie in [0, {n_actions}), got "
                         f"[{actions.min()}, {actions.max()}]")
    return actions.astype(action_dtype(n_actions))


def latents_to_indices(onehot: np.ndarray) -> np.ndarray:
    """(..., C, K) one-hot (or any scores) -> (..., C) uint8 class indices (argmax)."""
    if onehot.shape[-1] > 256:
        raise ValueError(f"{onehot.shape[-1]} classes do not fit uint8 indices (K <= 256)")
    return np.argmax(onehot, axis=-1).astype(np.uint8)


def indices_to_latents(indices: np.ndarray, k: int, dtype: np.dtype | type = np.float32
                       ) -> np.ndarray:
    """(..., C) class indices -> (..., C, K) one-hot."""
    return np.eye(k, dtype=dtype)[np.asarray(indices, dtype=np.intp)]


def to_wire_float(x: np.ndarray, float16: bool) -> np.ndarray:
    """float32, or float16 clipped to its finite range (an inf would poison the receiver)."""
    x = np.asarray(x, dtype=np.float32)
    return np.clip(x, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16) if float16 else x


def compact_experience(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                       terms: np.ndarray, avail: np.ndarray, latents: np.ndarray | None = None,
                       float16: bool = False) -> dict[str, np.ndarray]:
    """A chunk in its wire form, the ExperienceMsg arrays.

    obs (T, D), actions (T,) int, rewards (T,), terms (T,) bool, avail (T, A) bool,
    latents (T, C, K) one-hot or None. Rewards stay float32 (the learning target; T * 4 bytes).
    """
    out = {
        "obs": to_wire_float(obs, float16),
        "actions": pack_actions(actions, avail.shape[-1]),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terms": np.asarray(terms, dtype=bool),
        "avail": pack_bits(avail),
    }
    if latents is not None:
        out["latents"] = latents_to_indices(latents)
    return out


def expand_experience(data: Mapping[str, np.ndarray], n_actions: int, n_classes: int | None = None
                      ) -> dict[str, np.ndarray]:
    """Inverse of compact_experience: obs float32, actions int64, avail (T, A) bool, latents
    (T, C, K) float32 one-hot when present (needs `n_classes`, K)."""
    out = {
        "obs": np.asarray(data["obs"], dtype=np.float32),
        "actions": np.asarray(data["actions"], dtype=np.int64),
        "rewards": np.asarray(data["rewards"], dtype=np.float32),
        "terms": np.asarray(data["terms"], dtype=bool),
        "avail": unpack_bits(data["avail"], n_actions),
    }
    if data.get("latents") is not None:
        if n_classes is None:
            raise ValueError("n_classes (K) is needed to expand latents")
        out["latents"] = indices_to_latents(data["latents"], n_classes)
    return out


def naive_experience(obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                     terms: np.ndarray, avail: np.ndarray, latents: np.ndarray | None = None
                     ) -> dict[str, np.ndarray]:
    """The uncompressed baseline: float32 everything, actions one-hot (T, A), latents one-hot."""
    n_actions = avail.shape[-1]
    out = {
        "obs": np.asarray(obs, dtype=np.float32),
        "actions": indices_to_latents(actions, n_actions),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terms": np.asarray(terms, dtype=np.float32),
        "avail": np.asarray(avail, dtype=np.float32),
    }
    if latents is not None:
        out["latents"] = np.asarray(latents, dtype=np.float32)
    return out


def random_experience(obs_dim: int, n_actions: int, t: int = 20,
                      latent: tuple[int, int] | None = (32, 32), seed: int = 0
                      ) -> dict[str, np.ndarray | None]:
    """A random chunk in natural form (the compact_experience arguments), for sizing and tests."""
    rng = np.random.default_rng(seed)
    avail = rng.random((t, n_actions)) < 0.7
    avail[:, 0] = True  # no-op is always available in SMAC
    return {
        "obs": rng.standard_normal((t, obs_dim)).astype(np.float32),
        "actions": rng.integers(0, n_actions, t),
        "rewards": rng.random(t).astype(np.float32),
        "terms": np.arange(t) == t - 1,
        "avail": avail,
        "latents": None if latent is None else indices_to_latents(
            rng.integers(0, latent[1], (t, latent[0])), latent[1]),
    }


def experience_bytes(obs_dim: int, n_actions: int, t: int = 20,
                     latent: tuple[int, int] | None = (32, 32), float16: bool = True
                     ) -> dict[str, int]:
    """Estimated wire bytes of one agent's T-step chunk, naive vs compact, by encoding one.

    The naive chunk does not fit the ExperienceMsg schema (one-hot float actions), so it is
    framed as a ParamsMsg of the same named arrays: same header + one frame per array.
    """
    chunk = random_experience(obs_dim, n_actions, t, latent)
    compact = ExperienceMsg(sender=0, n_actions=n_actions,
                            **compact_experience(**chunk, float16=float16))
    naive = ParamsMsg(sender=0, arrays=naive_experience(**chunk))
    return {"naive": wire_size(encode(naive)), "compact": wire_size(encode(compact))}
