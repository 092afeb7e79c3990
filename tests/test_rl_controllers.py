"""The learned controllers on ControllerStates: plans that keep (15a)-(15g) and say why, the moves they fly, the
options a flowgraph can set, and a timed-out request that falls back to the safe plan in the closed loop."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.controllers import get_controller
from sagin_hil.controllers.base import ControllerOptionError


@pytest.mark.parametrize("algo", ["dsac", "mappo"])
def test_plans_on_the_environment_keep_the_constraints(algo):
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.constraints import plan_violations
    from sagin_hil.controllers.env import plan_to_action

    ctl = get_controller(algo, hover=False, min_move_m=0.0)
    world = SaginWorld(1, horizon_s=60.0)
    world.reset([2])
    planned = 0
    while not world.truncated:
        state = world.controller_state(0)
        plan = ctl.allocate(state)
        assert plan_violations(state, plan) == []
        assert set(plan.allocations) == {t.task_id for t in state.tasks}
        for tid, trail in plan.trail.items():
            assert trail["why"].startswith(f"{algo}: ") and trail["choice"] in state.modes
        planned += len(plan.allocations)
        a = plan_to_action(world, plan)
        world.step(*(v[None] for v in a.values()))
    assert planned >= 10


def test_moves_shorter_than_min_move_are_not_flown():
    from sagin_hil.controllers.abstraction import SaginWorld

    world = SaginWorld(1)
    world.reset([0])
    state = world.controller_state(0)
    flown = get_controller("dsac", hover=False, min_move_m=0.0).allocate(state).waypoints_m
    assert set(flown) == {"uav0", "uav1", "uav2"}
    for uav, target in flown.items():
        assert np.linalg.norm(np.subtract(target, state.positions_m[uav])) <= 10.0 + 1e-9  # v_max x 1 s
    assert get_controller("dsac", hover=False, min_move_m=50.0).allocate(state).waypoints_m == {}
    assert get_controller("dsac", min_move_m=0.0).allocate(state).waypoints_m == {}  # hover by default


def test_bad_options_are_named():
    with pytest.raises(ControllerOptionError, match="did you mean 'weights'"):
        get_controller("dsac", weight="x.safetensors")
    with pytest.raises(FileNotFoundError, match="sagin-hil train mappo"):
        get_controller("mappo", weights="/nonexistent/p.safetensors")


def test_a_timed_out_dsac_request_falls_back_and_the_run_goes_on(tmp_path):
    from sagin_hil.cli import app

    fg = tmp_path / "fg.toml"
    fg.write_text('name = "small"\nseed = 5\n[images]\ncount = 2\nsize_px = 64\n[controller]\nalgo = "dsac"\n'
                  'timeout_s = 1e-6\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "-q", "--json",
                                   str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["controllers"]["dsac"]["fallbacks"] >= 1  # per request; a frame may carry both tasks
    fell_back = [t for t in s["tasks"] if t["fallback"]]
    assert fell_back and all(t["bits"] > 0 for t in fell_back)  # carried on the safe default


def test_bench_gives_each_policy_its_decision_time_per_slot():
    from sagin_hil.benchmarks import validate_results
    from sagin_hil.controllers.rl.bench import bench_policies

    entries = validate_results({"benchmarks": bench_policies(quick=True)})["benchmarks"]
    assert [e["name"] for e in entries] == ["dsac", "mappo"]
    for e in entries:
        assert e["ours"]["ms"] > 0 and e["ours"]["env_ms"] > 0 and set(e["peers"]) == {"greedy", "link-adaptation"}
        assert e["ratio"]["greedy"] == pytest.approx(e["peers"]["greedy"]["ms"] / e["ours"]["ms"])
        assert e["settings"]["slots"] == 50 and e["settings"]["slots_with_tasks"] > 0
