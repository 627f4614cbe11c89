"""Convert between torch `Trajectory` batches and the numpy rollouts of `ImaginationBuffer`
(what Algorithm 2 shares: one dict of arrays per imagined rollout)."""

from __future__ import annotations

import numpy as np
import torch

from dwm_net.learning.types import Trajectory


def from_trajectory(traj: Trajectory) -> list[dict[str, np.ndarray]]:
    """One dict per rollout b: deter (H+1, R) float32, stoch (H+1, C) uint8 class indices (the
    argmax of the one-hot, exact for one-hot samples), action (H,), logits (H, A), avail (H, A)
    bool, reward (H,), discount (H,)."""
    batch = {
        "deter": traj.deter.detach().float(),
        "stoch": traj.stoch.detach().argmax(-1).to(torch.uint8),
        "action": traj.action.detach(),
        "logits": traj.logits.detach().float(),
        "avail": traj.avail.detach().bool(),
        "reward": traj.reward.detach().float(),
        "discount": traj.discount.detach().float(),
    }
    arrays = {k: np.swapaxes(v.cpu().numpy(), 0, 1) for k, v in batch.items()}  # batch-major
    return [{k: v[b] for k, v in arrays.items()} for b in range(traj.action.shape[1])]


def to_trajectory(sample: dict[str, np.ndarray], n_classes: int,
                  device: torch.device | str = "cpu") -> Trajectory:
    """A time-major `ImaginationBuffer.sample` -> `Trajectory` with one-hot stoch (H+1, n, C, K)
    and float32/int64/bool tensors on `device`."""
    def tensor(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(sample[name])).to(device=device, dtype=dtype)

    # One-hot built in float32 directly: F.one_hot would first allocate it as int64 (8 bytes per
    # class entry; 105 MB for 800 rollouts at 32x32 latents) only to convert it.
    index = tensor("stoch", torch.int64)  # (H+1, n, C)
    stoch = torch.zeros(*index.shape, n_classes, device=index.device).scatter_(-1, index.unsqueeze(-1), 1.0)
    return Trajectory(deter=tensor("deter", torch.float32), stoch=stoch,
                      action=tensor("action", torch.int64), logits=tensor("logits", torch.float32),
                      avail=tensor("avail", torch.bool), reward=tensor("reward", torch.float32),
                      discount=tensor("discount", torch.float32))
