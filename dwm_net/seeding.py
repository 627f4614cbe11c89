"""The project's one place for seeds: per-agent/per-stream derivation and global seeding.

torch is imported inside :func:`seed_everything` only, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np

# The legacy numpy seeder takes [0, 2**32), torch [0, 2**64); larger seeds wrap.
_NUMPY_SEEDS = 2**32
_TORCH_SEEDS = 2**64


def _stream_key(stream: str) -> int:
    # Python's hash() is salted per process; a digest is the same everywhere.
    return int.from_bytes(hashlib.sha256(stream.encode("utf-8")).digest()[:8], "little")


def derive_seed(seed: int, agent_id: int, stream: str = "agent") -> int:
    """A well-mixed 32-bit seed for ``(seed, agent_id, stream)``, identical in every process.

    Different agents or streams (e.g. ``"env"``, ``"torch"``) get unrelated seeds.
    """
    if seed < 0 or agent_id < 0:
        raise ValueError(f"seed and agent_id must be >= 0, got seed={seed}, agent_id={agent_id}")
    sequence = np.random.SeedSequence([seed, agent_id, _stream_key(stream)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def agent_seeds(seed: int, n_agents: int) -> list[int]:
    """One :func:`derive_seed` per agent id ``0..n_agents-1``."""
    return [derive_seed(seed, agent_id) for agent_id in range(n_agents)]


def seed_everything(seed: int, *, deterministic_torch: bool = False) -> np.random.Generator:
    """Seed ``random``, numpy's global RNG and torch; return a fresh Generator for the caller.

    ``deterministic_torch`` makes torch pick deterministic kernels (slower; warns where none
    exists) and is applied on every call, so a later ``False`` turns it back off.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    import torch

    random.seed(seed)
    np.random.seed(seed % _NUMPY_SEEDS)
    torch.manual_seed(seed % _TORCH_SEEDS)
    if deterministic_torch:
        # cuBLAS needs this workspace setting for deterministic results on CUDA.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic_torch, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic_torch
    torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


__all__ = ["agent_seeds", "derive_seed", "seed_everything"]
