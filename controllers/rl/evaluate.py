"""Policies on held-out seeds of the SAGIN environment: SCC per task per seed, and 95 % intervals over seeds.

Held-out seeds are 0, 1, 2, ...: training draws its episodes from seeds >= TRAIN_SEED_BASE (10^6). The score
of one seed is its episode's return (Eq. 18 summed: the SCC of every task) divided by the number of tasks
that arrived, so it is [P000]'s average SCC per task in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.controllers.abstraction import SaginWorld

__all__ = ["evaluate_policy", "ci95", "POLICIES"]

POLICIES = ("dsac", "mappo", "greedy", "link-adaptation", "random")


def ci95(x) -> tuple[float, float]:
    """Student-t 95 % interval of the mean of x (a single value: the value itself)."""
    from scipy import stats

    x = np.asarray(x, float)
    m = float(x.mean())
    if len(x) < 2:
        return m, m
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m - h, m + h


def _controller_actions(world: SaginWorld, ctl) -> dict[str, np.ndarray]:
    from sagin_hil.controllers.env import plan_to_action

    acts = []
    for e in range(world.E):
        plan = ctl.allocate(world.controller_state(e))
        try:
            acts.append(plan_to_action(world, plan, e=e))
        except ValueError:  # a plan Eq. 17 cannot express: the environment's defaults for this slot
            acts.append(plan_to_action(world, {}, e=e))
    return {k: np.stack([a[k] for a in acts]) for k in acts[0]}


def evaluate_policy(name: str, seeds, world_kwargs: dict[str, Any] | None = None, weights: str | Path | None = None,
                    hover: bool = False, policy=None) -> np.ndarray:
    """SCC per task of policy `name` on each seed (one episode each, all environments stepped together).

    name: "dsac" | "mappo" (weights: a file, default the shipped ones; hover: UAVs keep still) | "greedy" |
    "link-adaptation" (the registered controllers through controller_state / plan_to_action) | "random"
    (uniform Eq. 17 actions); world_kwargs go to SaginWorld (scenario, modes, weight_quality, ...)."""
    if name not in POLICIES:
        raise ValueError(f"policy {name!r} is not one of {POLICIES}")
    seeds = [int(s) for s in seeds]
    world = SaginWorld(n_envs=len(seeds), **(world_kwargs or {}))
    world.reset(seeds)
    n_tasks = np.isfinite(world.arrival_s).sum(1)
    ret = np.zeros(world.E)
    if name in ("dsac", "mappo"):
        from sagin_hil.controllers.rl.policy import load_policy

        pol = policy or load_policy(name, weights)
        step = lambda: pol.act_world(world, hover=hover).action  # noqa: E731
    elif name == "random":
        from gymnasium.vector.utils import batch_space

        from sagin_hil.controllers.env import _spaces

        space = batch_space(_spaces(world)[1], world.E)
        space.seed(seeds[0])
        step = space.sample
    else:
        from sagin_hil.controllers import get_controller

        ctl = get_controller(name)
        step = lambda: _controller_actions(world, ctl)  # noqa: E731
    while not world.truncated:
        a = step()
        if hover:
            a["waypoint"] = np.zeros_like(a["waypoint"])
        ret += world.step(a["uav_leo"], a["user_uav"], a["isl"], a["mode"], a["waypoint"]).reward
    return ret / np.maximum(n_tasks, 1)
