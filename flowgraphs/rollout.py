"""A flowgraph at the abstraction fidelity: its controllers rolled out in the link abstraction.

The flowgraph's scenario, modes, task ranges and controllers (its `algo` and those it compares) drive a
controllers.abstraction.SaginWorld instead of the sample-level runner: every slot the controller gets the
world's ControllerState, its Plan becomes the environment's action (a plan breaking (15a)-(15c) is replaced
by the safe fallback plan, as the runner does), and the world predicts each task's delay, PSNR and SCC
from the measured tables. Tasks arrive by FTP Model 3 at `tasks.rate_hz` per LEO whatever `tasks.arrival`
says (the abstraction's traffic model); the episode lasts until the flowgraph's number of tasks has arrived
on average (`horizon_s`), plus the largest deadline, so each task can finish.

What it measures is what the abstraction predicts (a fraction of a second per point, against seconds at
sample level); the gap between the two fidelities is `sagin-hil bench world`'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sagin_hil.flowgraphs.config import Flowgraph, FlowgraphError

__all__ = ["rollout_flowgraph", "horizon_s"]


def _n_tasks(fg: Flowgraph, n_users: int) -> int:
    """Tasks the sample-level run of `fg` carries (per controller)."""
    if fg.tasks.arrival == "ftp3":
        return fg.tasks.count
    if fg.tasks.arrival == "frames":
        return fg.tasks.frames * n_users
    return fg.images.count


def horizon_s(fg: Flowgraph, n_sats: int, n_users: int) -> float:
    """Arrivals span: the flowgraph's task count at FTP Model 3 rate `tasks.rate_hz` x LEOs, >= 1 s."""
    return max(1.0, _n_tasks(fg, n_users) / (fg.tasks.rate_hz * n_sats))


def _world(fg: Flowgraph, seed: int):
    """The flowgraph's world, reset with `seed`, and the time up to which its tasks count."""
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.flowgraphs.runner import _load_scenario

    scenario = _load_scenario(fg)
    arrivals_s = horizon_s(fg, len(scenario.satellites), len(scenario.users))
    size = fg.images.size_px or 256
    try:
        world = SaginWorld(
            1, scenario, horizon_s=math.ceil(arrivals_s + fg.tasks.deadline_s[1]), arrival_rate_hz=fg.tasks.rate_hz,
            modes=tuple(fg.controller.modes), target_bler=fg.controller.options.get("target_bler", 0.1),
            n_pixels=size * size, deadline_range_s=fg.tasks.deadline_s, quality_range_db=fg.tasks.quality_min_db,
            weight_quality=fg.tasks.weight_quality, rolloff=fg.phy.rolloff)
    except ValueError as exc:
        raise FlowgraphError(f"{fg.source}: the abstraction cannot run this flowgraph: {exc}") from None
    world.reset([seed])
    return world, arrivals_s


def _rollout(fg: Flowgraph, algo: str, seed: int) -> dict[str, Any]:
    """One controller through one episode; per task: mode, delay, PSNR, SCC, deadline and floor."""
    from sagin_hil.controllers import fallback_plan, get_controller
    from sagin_hil.controllers.env import plan_to_action

    world, cutoff_s = _world(fg, seed)
    controller = get_controller(algo, **fg.controller.options)
    modes = list(world.modes)
    records: dict[int, dict[str, Any]] = {}
    rejected = 0
    while not world.truncated:
        state = world.controller_state(0)
        action = None
        if state.tasks:
            plan = controller.allocate(state)
            try:
                action = plan_to_action(world, plan)
            except ValueError:  # the action cannot express it, as the runner would not carry it
                rejected += 1
                action = plan_to_action(world, fallback_plan(state))
        else:  # nothing to decide: hold the UAVs where they are
            action = plan_to_action(world, {})
        world.step(*(action[k][None] for k in ("uav_leo", "user_uav", "isl", "mode", "waypoint")))
        last = world.last
        for j in np.nonzero(last["ok"][0])[0]:
            g = int(last["task"][0, j])
            delay, psnr = float(last["delay_s"][0, j]), float(last["psnr_db"][0, j])
            records[g] = {"mode": modes[int(action["mode"][j])], "delay_s": delay, "psnr_db": psnr,
                          "scc": float(last["scc"][0, j])}
    tasks = []
    for g in np.nonzero(world.arrival_s[0] <= cutoff_s)[0]:
        r = records.get(int(g), {"mode": None, "delay_s": math.nan, "psnr_db": math.nan, "scc": 0.0})
        d_max, q_min = float(world.deadline_s[0, g]), float(world.q_min_db[0, g])
        tasks.append({**r, "deadline_s": d_max, "quality_min_db": q_min,
                      "met_deadline": bool(r["delay_s"] <= d_max), "met_quality": bool(r["psnr_db"] >= q_min)})
    return {"tasks": tasks, "rejected_plans": rejected}


def rollout_flowgraph(fg: Flowgraph, seed: int | None = None) -> dict[str, Any]:
    """Every controller of `fg` through the same abstraction episode (seed: the flowgraph's by default).

    Returns {"fidelity": "abstraction", "seed", "horizon_s", "controller": fg's algo, "controllers": {algo:
    {"tasks": [per task: mode (None: never dispatched), delay_s, psnr_db (NaN: not delivered), scc,
    deadline_s, quality_min_db, met_deadline, met_quality], "rejected_plans"}}}.
    """
    seed = fg.seed if seed is None else int(seed)
    algos = [fg.controller.algo] + [c for c in fg.controller.compare if c != fg.controller.algo]
    return {"fidelity": "abstraction", "seed": seed, "controller": fg.controller.algo,
            "controllers": {algo: _rollout(fg, algo, seed) for algo in algos}}
