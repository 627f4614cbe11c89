"""Environments: the built-in SMAC simulator and the real-SMAC adapter, behind one factory."""

from __future__ import annotations

from typing import Any, Literal

from .maps import MAPS

SCENARIOS: tuple[str, ...] = tuple(MAPS)
BACKENDS = ("builtin", "sc2")


def make_env(name: str, seed: int | None = 0, backend: Literal["builtin", "sc2"] = "builtin",
             **kwargs: Any):
    """An object with SMAC's ``StarCraft2Env`` methods for scenario ``name``.

    ``backend="builtin"`` (default) is this project's simulator; ``"sc2"`` wraps real SMAC and
    needs StarCraft II and the StarCraft SMAC package.
    """
    if backend == "builtin":
        from .builtin import BuiltinSMAC

        return BuiltinSMAC(name, seed=seed, **kwargs)
    if backend == "sc2":
        from .sc2 import make_sc2_env

        return make_sc2_env(name, seed=seed or 0, **kwargs)
    raise ValueError(f"unknown env backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "SCENARIOS", "make_env"]
