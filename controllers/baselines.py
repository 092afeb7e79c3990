"""Baseline controllers: floors a learning controller must beat (random, greedy), a fixed robust link (what
the plane falls back to), and the AO baselines of [P001] (fixed bandwidth, fixed power, fixed location),
which are the AO with one block frozen."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sagin_hil.controllers.ao import AoController
from sagin_hil.controllers.base import Controller, fallback_allocation
from sagin_hil.controllers.constraints import Pairings
from sagin_hil.controllers.link_adaptation import LinkAdaptation, LinkAdaptationOptions
from sagin_hil.datatypes import Allocation, ControllerState, HopAllocation, Plan, Route
from sagin_hil.phy.mcs import MCS_TABLE

__all__ = ["RandomController", "GreedyController", "FixedRobust", "AoFixedBandwidth", "AoFixedPower",
           "AoFixedLocation"]


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="seeds the choices: the same seed, the same decisions")


class RandomController(Controller):
    """The floor: for each task a candidate route, an allowed mode and an MCS per hop drawn uniformly, and
    for Mode 1 a budget drawn log-uniformly in [0.05, 2] bit/pixel. Whatever is measured is ignored."""

    name = "random"
    Options = RandomOptions

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def allocate(self, state: ControllerState) -> Plan:
        from sagin_hil.codecs.modes import MODES

        plan, pairings = Plan(), Pairings()
        for t in state.tasks:
            routes = pairings.allowed(state.routes[t.task_id])
            route = routes[int(self.rng.integers(len(routes)))]
            pairings.take(route)
            mode = state.modes[int(self.rng.integers(len(state.modes)))]
            spec = MODES.get(mode)
            hops = {h: HopAllocation("analog" if spec.analog else MCS_TABLE[int(self.rng.integers(len(MCS_TABLE)))].name)
                    for h in route.links}
            bpp = float(math.exp(self.rng.uniform(math.log(0.05), math.log(2.0)))) if spec.rate_adaptive else 0.0
            plan.allocations[t.task_id] = Allocation(t.task_id, route, mode=mode, bits_per_pixel=bpp,
                                                     bandwidth_ratio=spec.bandwidth_ratio(), hops=hops)
            plan.trail[t.task_id] = {"route": str(route), "choice": mode, "why": "drawn at random"}
        return plan


class GreedyController(LinkAdaptation):
    """The greedy floor: the UAV nearest the user, the satellite highest above it (direct when the task's
    source is that satellite, else over its ISL), then the mode and MCS of highest predicted SCC on that one
    route (link adaptation's prediction). It never trades a farther UAV or a lower satellite for a better
    link, which a learning controller can."""

    name = "greedy"
    Options = LinkAdaptationOptions

    def _greedy_route(self, state: ControllerState, routes: list[Route]) -> Route:
        def key(r: Route) -> tuple[float, float, int]:
            user, uav = state.positions_m.get(r.user), state.positions_m.get(r.uav)
            dist = math.dist(user, uav) if user is not None and uav is not None else 0.0
            return dist, -state.elevation_deg.get(f"{r.leo}->{r.uav}", 0.0), len(r.nodes)

        return min(routes, key=key)

    def allocate(self, state: ControllerState) -> Plan:
        plan = Plan()
        for task in state.tasks:
            route = self._greedy_route(state, state.routes[task.task_id])
            alloc, trail = self._route(task, route, state)
            trail["why"] = f"nearest UAV, highest satellite; {trail['why']}"
            plan.allocations[task.task_id], plan.trail[task.task_id] = alloc, trail
        return plan


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
