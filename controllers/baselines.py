"""Baseline controllers: a fixed robust link (what the plane falls back to) and the AO baselines of
paper 001 (fixed bandwidth, fixed power, fixed location), which are the AO with one block frozen."""

from __future__ import annotations

from typing import Any

from sagin_hil.controllers.base import Controller, fallback_allocation, register_controller
from sagin_hil.datatypes import Allocation, LinkReport, Task

__all__ = ["FixedRobust", "AoFixedBandwidth", "AoFixedPower", "AoFixedLocation"]


@register_controller("fixed-robust")
class FixedRobust(Controller):
    """Every hop on the most robust MCS with a fixed JPEG 2000 budget, whatever is measured.

    Parameters
    ----------
    compression: the JPEG 2000 budget in bits per pixel.
    """

    def __init__(self, compression: float = 0.1):
        self.compression = float(compression)

    def allocate(self, task: Task, reports: dict[str, LinkReport], state: dict[str, Any]) -> dict[str, Allocation]:
        route = list(state.get("route", []))
        plan = {hop: fallback_allocation(compression=self.compression) for hop in route}
        for a in plan.values():
            a.fallback = False  # a deliberate decision, not a missing controller
        return plan


def _ao_baseline(name: str, optimize: tuple[str, ...], doc: str) -> type[Controller]:
    from sagin_hil.controllers.ao import AoController

    def __init__(self, seed: int = 0, max_iter: int = 50, tol: float = 1e-4, scheme: str = "joint"):
        AoController.__init__(self, optimize=optimize, seed=seed, max_iter=max_iter, tol=tol, scheme=scheme)

    cls = type(name, (AoController,), {"__init__": __init__, "__doc__": doc})
    return cls


AoFixedBandwidth = register_controller("ao-fixed-bandwidth")(_ao_baseline(
    "AoFixedBandwidth", ("power", "position"),
    "Paper 001 baseline: equal bandwidth split; power and UAV positions optimised by the AO."))
AoFixedPower = register_controller("ao-fixed-power")(_ao_baseline(
    "AoFixedPower", ("bandwidth", "position"),
    "Paper 001 baseline: equal power split; bandwidth and UAV positions optimised by the AO."))
AoFixedLocation = register_controller("ao-fixed-location")(_ao_baseline(
    "AoFixedLocation", ("bandwidth", "power"),
    "Paper 001 baseline: UAVs over their users' centroid; bandwidth and power optimised by the AO."))
