"""Baseline controllers: a fixed robust link (what the plane falls back to) and the AO baselines of
[P001] (fixed bandwidth, fixed power, fixed location), which are the AO with one block frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sagin_hil.controllers.ao import AoController
from sagin_hil.controllers.base import Controller, fallback_allocation
from sagin_hil.datatypes import ControllerState, Plan

__all__ = ["FixedRobust", "AoFixedBandwidth", "AoFixedPower", "AoFixedLocation"]


class FixedRobustOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bits_per_pixel: float = Field(0.1, gt=0, le=8, description="the JPEG 2000 budget of every task")


class FixedRobust(Controller):
    """Every hop on the most robust MCS with a fixed JPEG 2000 budget, on the first candidate route,
    whatever is measured."""

    name = "fixed-robust"

    Options = FixedRobustOptions

    def __init__(self, bits_per_pixel: float = 0.1):
        self.bits_per_pixel = float(bits_per_pixel)

    def allocate(self, state: ControllerState) -> Plan:
        plan = Plan()
        for t in state.tasks:
            a = fallback_allocation(t.task_id, state.routes[t.task_id][0], bits_per_pixel=self.bits_per_pixel)
            a.fallback = False  # a deliberate decision, not a missing controller
            plan.allocations[t.task_id] = a
            plan.trail[t.task_id] = {"route": str(a.route), "choice": "mode1",
                                     "why": f"fixed: most robust MCS, {self.bits_per_pixel} bit/pixel"}
        return plan


class AoFixedBandwidth(AoController):
    """[P001] baseline: equal bandwidth split; power and UAV positions optimised by the AO."""

    name = "ao-fixed-bandwidth"

    optimize = ("power", "position")


class AoFixedPower(AoController):
    """[P001] baseline: equal power split; bandwidth and UAV positions optimised by the AO."""

    name = "ao-fixed-power"

    optimize = ("bandwidth", "position")


class AoFixedLocation(AoController):
    """[P001] baseline: UAVs over their users' centroid; bandwidth and power optimised by the AO."""

    name = "ao-fixed-location"

    optimize = ("bandwidth", "power")
