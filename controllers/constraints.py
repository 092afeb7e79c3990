"""The constraints of [P000]'s problem (15a)-(15g) that a Plan must keep, checked before it is carried out.

(15a) a UAV is served by one LEO per slot: every task through a UAV in one plan uses the same LEO -> UAV
      pairing; (15b) a user is served by one UAV per slot; (15c) a LEO uses at most one ISL per slot;
(15d) a route is a candidate the state offered (its links exist and were sounded), and an ISL hop is one the
      state says is usable; (15e) every allocated power and bandwidth is within the node's and link's
      nominal budget; (15f) a UAV waypoint is within its altitude limits; (15g) ... and reachable: within
      v_max x slot length, when the state gives a slot length (context["slot_s"]).
The quality and delay constraints (15h-i) are outcomes, scored by the SCC, not checked here.
"""

from __future__ import annotations

import math

from sagin_hil.datatypes import ControllerState, Plan, Route

__all__ = ["Pairings", "plan_violations"]


class Pairings:
    """The pairings a plan has made so far, so a controller that decides task by task keeps (15a)-(15c):
    `allowed(routes)` keeps the candidates consistent with them (all of them if none is), `take(route)`
    records a choice."""

    def __init__(self) -> None:
        self.leo_of_uav: dict[str, str] = {}
        self.uav_of_user: dict[str, str] = {}
        self.isl_of_leo: dict[str, str] = {}

    def _fits(self, r: Route) -> bool:
        isl_ok = all(self.isl_of_leo.get(h.split("->")[0], h) == h for h in r.isl_hops)
        return (self.leo_of_uav.get(r.uav, r.leo) == r.leo and self.uav_of_user.get(r.user, r.uav) == r.uav
                and isl_ok)

    def allowed(self, routes: list[Route]) -> list[Route]:
        return [r for r in routes if self._fits(r)] or list(routes)

    def take(self, r: Route) -> None:
        self.leo_of_uav.setdefault(r.uav, r.leo)
        self.uav_of_user.setdefault(r.user, r.uav)
        for h in r.isl_hops:
            self.isl_of_leo.setdefault(h.split("->")[0], h)


def plan_violations(state: ControllerState, plan: Plan) -> list[str]:
    """Every broken constraint of `plan` for `state`, each named with its equation; [] when it keeps them."""
    out: list[str] = []
    leo_of_uav: dict[str, str] = {}
    uav_of_user: dict[str, str] = {}
    isl_of_leo: dict[str, str] = {}
    for tid, a in sorted(plan.allocations.items()):
        r = a.route
        if tid not in state.routes:
            out.append(f"(15d) task {tid} is not in the state")
            continue
        if r not in state.routes[tid]:
            out.append(f"(15d) task {tid}: route {r} is not one of its candidates "
                       f"{[str(c) for c in state.routes[tid]]}")
        if leo_of_uav.setdefault(r.uav, r.leo) != r.leo:
            out.append(f"(15a) {r.uav} is paired with {leo_of_uav[r.uav]} and {r.leo} in one slot")
        if uav_of_user.setdefault(r.user, r.uav) != r.uav:
            out.append(f"(15b) {r.user} is served by {uav_of_user[r.user]} and {r.uav} in one slot")
        for hop in r.isl_hops:
            a_, b_ = hop.split("->")
            if state.isl and (a_, b_) not in state.isl and (b_, a_) not in state.isl:
                out.append(f"(15d) task {tid}: ISL {hop} is not usable now")
            if isl_of_leo.setdefault(a_, hop) != hop:
                out.append(f"(15c) {a_} uses two ISLs in one slot: {isl_of_leo[a_]} and {hop}")
        for hop, h in a.hops.items():
            tx = hop.split("->")[0]
            if h.power_w is not None and tx in state.power_w and h.power_w > state.power_w[tx] * (1 + 1e-6):
                out.append(f"(15e) task {tid}: {hop} power {h.power_w:g} W exceeds {tx}'s {state.power_w[tx]:g} W")
            nominal = state.bandwidth_hz.get(hop)
            if h.bandwidth_hz is not None and nominal is not None and h.bandwidth_hz > nominal * (1 + 1e-6):
                out.append(f"(15e) task {tid}: {hop} bandwidth {h.bandwidth_hz:g} Hz exceeds its {nominal:g} Hz")
    slot_s = state.context.get("slot_s")
    for uav, (x, y, z) in plan.waypoints_m.items():
        lim = state.uav_limits.get(uav)
        if lim is None:
            out.append(f"(15f) waypoint for {uav!r}, which is not a UAV of the state")
            continue
        alt_min, alt_max, v_max = lim
        if not alt_min <= z <= alt_max:
            out.append(f"(15f) {uav} waypoint altitude {z:g} m is outside [{alt_min:g}, {alt_max:g}] m")
        here = state.positions_m.get(uav)
        if slot_s and here is not None and math.dist(here, (x, y, z)) > v_max * slot_s * (1 + 1e-6):
            out.append(f"(15g) {uav} waypoint is {math.dist(here, (x, y, z)):.0f} m away: more than v_max "
                       f"{v_max:g} m/s x {slot_s:g} s")
    return out
