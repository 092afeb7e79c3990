"""The SAGIN world's rules that both fidelities share: which routes a task may take.

The sample-level runner (flowgraphs/runner.py) and the link abstraction use the same functions here, so a
controller trained on one chooses among the same options on the other.
"""

from __future__ import annotations

from sagin_hil.datatypes import Route

__all__ = ["CANDIDATE_UAVS", "candidate_routes"]


CANDIDATE_UAVS = 2  # the UAVs nearest each user that a task's candidate routes go through


def candidate_routes(scenario, source: str, user: str, t_s: float) -> list[Route]:
    """The routes a controller may choose for a task from LEO `source` to `user`: through each of the
    CANDIDATE_UAVS UAVs nearest the user, from each satellite that sees that UAV, reached from the source
    directly or over one inter-satellite link (an ISL hand-off). The first is the default: the nearest UAV
    and the satellite highest above it. A UAV no satellite sees still gets the highest one, so a task always
    has a route (over a link below the minimum elevation the hop may fail, as it would)."""
    uavs = sorted(scenario.uavs, key=lambda u: scenario.link_state(u, user, t_s).distance_m)[:CANDIDATE_UAVS]
    routes = []
    for uav in uavs:
        sats = sorted(scenario.satellites, key=lambda s: -scenario.link_state(s, uav, t_s).elevation_deg)
        seen = [s for s in sats if scenario.link_state(s, uav, t_s).visible] or sats[:1]
        for sat in seen:
            if sat == source:
                routes.append(Route((sat, uav, user)))
            elif scenario.link_state(source, sat, t_s).visible:  # the Earth does not block the ISL
                routes.append(Route((source, sat, uav, user)))
    if not routes:  # the source sees no satellite that sees a UAV: hand the task to the highest one regardless
        uav = uavs[0]
        sat = max(scenario.satellites, key=lambda s: scenario.link_state(s, uav, t_s).elevation_deg)
        routes.append(Route((source, uav, user) if sat == source else (source, sat, uav, user)))
    return routes
