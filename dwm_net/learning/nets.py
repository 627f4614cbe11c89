"""The MLP every head of the world model and the actor-critic is built from, the precision of
its matrix products (``model.precision``), and the optimizer they train with (`FusedAdam`).

``bfloat16`` runs an MLP's products under CPU autocast when a call has at least
``BF16_MIN_ROWS`` rows, and hands back float32, so everything downstream (softmax,
log-probabilities, KL, returns, losses) and the weights and Adam state stay float32: mixed
precision, not a bfloat16 model. It pays where the CPU multiplies bfloat16 in hardware, and
only for large batches. Measured on one core (a 384-128-128-8 MLP, one thread, forward +
backward, float32 time / bfloat16 time):

| rows | Intel Xeon with AMX | AMD EPYC (Zen 4) with AVX512-BF16, no AMX |
|---|---|---|
| 16 (posterior loop) | 0.43 | 0.47 |
| 320 (imagination, B x T) | 1.04 | 1.30 |
| 8,000 (actor-critic update, B x T x H) | 3.41 | 2.32 |

(1 row, acting: 0.37 on the Xeon: the casts cost more than the products.) So acting and the
posterior loop (B = 16) stay float32, while the actor-critic update, imagination and the heads
over whole batches go bfloat16. Without either instruction set oneDNN emulates bfloat16 and can
be slower, which is why ``auto`` asks the CPU. The GRU cell stays float32: its error would
compound over the T and H sequential steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

# Fewest rows (product of the leading dims) of a call that multiplies in bfloat16; see above.
BF16_MIN_ROWS = 256


def _cpu_probe(name: str) -> bool:
    """torch's own CPU feature probe ``torch.cpu.<name>()``; False where this torch lacks it."""
    probe = getattr(torch.cpu, name, None)
    return bool(probe()) if probe is not None else False


def amx_available() -> bool:
    """Whether this CPU multiplies bfloat16 tiles in hardware (Intel AMX), as torch sees it."""
    return _cpu_probe("_is_amx_tile_supported")


def avx512_bf16_available() -> bool:
    """Whether this CPU has AVX512-BF16 dot products (e.g. AMD Zen 4, Intel Cooper Lake and later)."""
    return _cpu_probe("_is_avx512_bf16_supported")


def low_precision(precision: str) -> bool:
    """``model.precision`` (validated by the config) -> whether the MLPs multiply in bfloat16 on
    this machine: ``auto`` where the CPU has AMX or AVX512-BF16."""
    return precision == "bfloat16" or (
        precision == "auto" and (amx_available() or avx512_bf16_available()))


class MLP(nn.Sequential):
    """``layers`` ReLU hidden layers of width ``hidden``, then a linear output; (..., inp) ->
    (..., out) float32. With ``bf16`` a call of at least ``BF16_MIN_ROWS`` rows multiplies in
    bfloat16 (see the module docstring).
    A ``Sequential`` underneath, so checkpoints name its weights as they always did."""

    def __init__(self, inp: int, out: int, hidden: int, layers: int, bf16: bool = False) -> None:
        mods: list[nn.Module] = []
        for _ in range(layers):
            mods += [nn.Linear(inp, hidden), nn.ReLU()]
            inp = hidden
        mods.append(nn.Linear(inp, out))
        super().__init__(*mods)
        self.bf16 = bf16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.bf16 or x.numel() < BF16_MIN_ROWS * x.shape[-1]:
            return super().forward(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return super().forward(x).float()


class FusedAdam(torch.optim.Adam):
    """Adam through torch's fused kernel: the same update rule in one pass over all parameters
    instead of a loop of small ops per tensor (one thread, the `explore` world model's 48 tensors:
    2.4 ms a step unfused, 0.7 ms fused). A checkpoint of the unfused optimizer loads and then
    steps fused (its param groups would otherwise bring back ``fused=None``)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float) -> None:
        super().__init__(params, lr=lr, fused=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["fused"], group["foreach"] = True, None


__all__ = ["BF16_MIN_ROWS", "MLP", "FusedAdam", "amx_available", "avx512_bf16_available", "low_precision"]
