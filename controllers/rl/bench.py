"""Decision time per slot of the learned policies (part of `sagin-hil bench controller`).

"ours.ms": the registered controller's allocate() per slot on the ControllerStates of an episode the shipped
policy drives (features, numpy networks, pairing masks, link adaptation's MCS and budgets), best of the
repeats. "env_ms": the policy deciding the environment's whole window on its arrays (evaluation path).
Peers: the greedy and link-adaptation controllers' allocate() on the same states.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry, report_progress

__all__ = ["bench_policies"]


def _per_slot_ms(fn, states, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in states:
            fn(s)
        best = min(best, (time.perf_counter() - t0) / len(states))
    return best * 1e3


def bench_policies(quick: bool = False) -> list[dict[str, Any]]:
    from sagin_hil.controllers import get_controller
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.rl.policy import load_policy

    horizon_s = 50.0 if quick else 200.0
    repeats = 2 if quick else 3
    out = []
    peers_ctl = {name: get_controller(name) for name in ("greedy", "link-adaptation")}
    for k, algo in enumerate(("dsac", "mappo")):
        report_progress(f"policy {algo}", k, 2)
        pol = load_policy(algo)
        world = SaginWorld(1, horizon_s=horizon_s)
        means, states, times = [], [], []
        for r in range(repeats):  # the episode the policy itself drives, each slot's decision timed
            world.reset([0])
            times = []
            while not world.truncated:
                if r == 0:
                    states.append(world.controller_state(0))
                t0 = time.perf_counter()
                a = pol.act_world(world).action
                times.append(time.perf_counter() - t0)
                world.step(a["uav_leo"], a["user_uav"], a["isl"], a["mode"], a["waypoint"])
            means.append(float(np.mean(times)))
        ours_ms = min(means) * 1e3
        ctl = get_controller(algo)
        alloc_ms = _per_slot_ms(ctl.allocate, states, repeats)
        peers = {name: {"ms": _per_slot_ms(c.allocate, states, repeats)} for name, c in peers_ctl.items()}
        busy = [s for s in states if s.tasks]
        out.append(benchmark_entry(
            algo, ours={"ms": alloc_ms, "env_ms": ours_ms, "env_p95_ms": float(np.percentile(times, 95)) * 1e3},
            peers=peers, ratio={n: p["ms"] / alloc_ms for n, p in peers.items()},
            settings={"slots": len(states), "slots_with_tasks": len(busy), "seed": 0, "threads": 1},
            notes="ms: the registered controller's decision per slot, ControllerState to Plan (features, numpy "
                  "networks, pairing masks, link adaptation's MCS and budgets), mean over an episode's slots, "
                  "best of the repeats; env_ms: the same policy deciding the environment's whole window on its "
                  "arrays (the evaluation path), env_p95_ms its 95th percentile; peers: their allocate() on the "
                  "same states"))
    return out
