"""The closed loop through typed seams: every controller drives the main job, runs are reproducible from their
seed, the AO of [P001] beats its baselines at sample level, researchers' own images, and the messages a new
user meets."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app
from sagin_hil.controllers import available_controllers

SMALL = 'name = "small"\nseed = 5\n[images]\ncount = 2\nsize_px = 64\n[tasks]\nquality_min_db = [18.0, 22.0]\n'


def _run(tmp_path, *args, flowgraph=None, expect=0):
    fg = tmp_path / "fg.toml"
    if flowgraph is not None:
        fg.write_text(flowgraph)
    out = tmp_path / "runs"
    res = CliRunner().invoke(app, ["run", *([str(fg)] if flowgraph is not None else []), *args, "--out", str(out), "-q",
                                   "--json", str(tmp_path / "s.json")])
    assert res.exit_code == expect, res.output
    return json.loads((tmp_path / "s.json").read_text()) if expect == 0 else res.output


@pytest.mark.parametrize("algo", available_controllers())
def test_every_registered_controller_runs_the_main_job(tmp_path, algo):
    # a generous timeout: what is tested is that the controller answers, not how fast a loaded machine runs it
    s = _run(tmp_path, "--set", f"controller.algo={algo}", "--set", "controller.timeout_s=120", flowgraph=SMALL)
    assert s["controller"] == algo and len(s["tasks"]) == 2
    assert s["resolved_flowgraph"]["controller"]["timeout_s"] == 120
    assert s["controllers"][algo]["fallbacks"] == 0  # the controller itself answered every request
    for t in s["tasks"]:
        assert not t["fallback"] and t["trail"], t
        assert t["mode"] == "mode1" and (t["bits"] > 0 or t["mcs"] == "not served")


def test_the_same_seed_gives_the_same_tasks_csv(tmp_path):
    runs = []
    for k, seed in enumerate((7, 7, 8)):
        d = tmp_path / f"r{k}"
        d.mkdir()
        s = _run(d, "--seed", str(seed), flowgraph=SMALL)
        (run_dir,) = (d / "runs").iterdir()
        runs.append(((run_dir / "tasks.csv").read_text(), s, run_dir.name))
    assert runs[0][0] == runs[1][0]  # byte for byte: delays from the compute-time table, seeded noise
    assert runs[0][0] != runs[2][0]  # another seed draws other deadlines and floors
    assert runs[0][2] != runs[1][2]  # a run id, not the second: folders never collide
    s = runs[0][1]
    assert s["seed"] == 7 and s["timing"] == "measured" and s["version"] and s["radio"]["kind"] == "emulated"
    assert s["resolved_flowgraph"]["seed"] == 7 and s["resolved_flowgraph"]["images"]["size_px"] == 64


def test_relay_001_ao_beats_each_baseline_at_sample_level(tmp_path):
    """[P001]'s AO and its three baselines on the same frames: power, bandwidth and UAV positions executed at
    sample level. The sum rate at the SNRs the receivers measured tracks each prediction and the AO's is the
    highest; the bits the PHY delivered are reported beside it."""
    s = _run(tmp_path, "relay-001")
    ctl = s["controllers"]
    assert set(ctl) == {"ao", "ao-fixed-bandwidth", "ao-fixed-power", "ao-fixed-location"}
    for name, m in ctl.items():
        assert m["sum_rate_bps"] == pytest.approx(m["predicted_sum_rate_bps"], rel=0.05), name
        assert 0 < m["phy_sum_rate_bps"] < m["sum_rate_bps"]
        users = m["frames"][0]["users"]
        assert len(users) == 8 and {u["kind"] for u in users.values()} == {"semantic", "conventional"}
    for baseline in ("ao-fixed-bandwidth", "ao-fixed-power", "ao-fixed-location"):
        assert ctl["ao"]["sum_rate_bps"] >= ctl[baseline]["sum_rate_bps"], baseline
    # the AO moved the UAVs: every task of the second frame was carried from the decided position
    ao_tasks = [t for t in s["tasks"] if t["trail"].get("controller") == "ao"]
    assert len(ao_tasks) == 16 and all(t["route"].startswith("leo0->uav") for t in ao_tasks)


def test_own_images_any_size_grey_or_colour(tmp_path):
    from skimage.io import imsave

    rng = np.random.default_rng(0)
    imgs = tmp_path / "mine"
    imgs.mkdir()
    imsave(imgs / "grey.png", (rng.random((72, 100)) * 255).astype(np.uint8))
    imsave(imgs / "colour.png", np.dstack([np.linspace(0, 255, 96 * 80).reshape(80, 96).astype(np.uint8)] * 3))
    s = _run(tmp_path, flowgraph=f'[images]\ndir = "{imgs}"\nsize_px = 0\n[tasks]\nquality_min_db = [10.0, 12.0]\n')
    assert [t["name"] for t in s["tasks"]] == ["colour", "grey"]
    assert {t["bits"] > 0 for t in s["tasks"]} == {True}
    (imgs / "broken.png").write_bytes(b"not an image")
    out = _run(tmp_path, flowgraph=f'[images]\npaths = ["{imgs / "broken.png"}"]\n', expect=2)
    assert "broken.png" in out and "cannot be read" in out
    out = _run(tmp_path, flowgraph='[images]\ndir = "no/such/folder"\n', expect=2)
    assert "images.dir" in out and "not a folder" in out


@pytest.mark.parametrize("args, words", [
    (["--seed", "-1"], ["--seed -1", "'seed' = -1", "greater than or equal to 0"]),
    (["--radio", "usrp"], ["with --radio usrp", "'radio.kind' = 'usrp'"]),
    (["--set", "controller.algo=aoo"], ["unknown controller 'aoo'", "did you mean 'ao'"]),
    (["--set", "controller.options.target_blr=0.1"], ["unknown option 'target_blr'", "did you mean 'target_bler'",
                                                     "Its options: target_bler (default 0.1)"]),
    (["--set", "controller.modes=['mode4']"], ["unknown mode 'mode4'", "choose one of: mode1"]),
    (["--set", "nokey"], ["--set 'nokey': give key=value"]),
])
def test_bad_overrides_are_named_without_a_traceback(tmp_path, args, words):
    out = _run(tmp_path, *args, expect=2)
    assert "Traceback" not in out
    for w in words:
        assert w in " ".join(out.split()), (w, out)


def test_candidate_routes_hand_a_task_over_an_isl_when_its_satellite_has_set():
    from sagin_hil.controllers.world import candidate_routes
    from sagin_hil.phy.channel.scenario import Scenario

    sc = Scenario.default()
    t_mid, t_late = 115.0, 243.0  # leo0 at zenith; leo0 set over uav0 (window ends ~227 s), leo1 still up
    assert sc.link_state("leo0", "uav0", t_mid).visible and not sc.link_state("leo0", "uav0", t_late).visible
    first = candidate_routes(sc, "leo0", "user0", t_mid)[0]
    assert first.nodes == ("leo0", "uav0", "user0") and first.isl_hops == []
    late = candidate_routes(sc, "leo0", "user0", t_late)
    assert late and all(r.source == "leo0" and r.isl_hops and sc.link_state(r.leo, r.uav, t_late).visible
                        for r in late)
    assert {r.uav for r in late} == {"uav0", "uav1"}  # the two UAVs nearest user0


def test_an_isl_hand_off_is_carried_at_sample_level(tmp_path):
    """A frame after leo0 has set over the UAV: the image goes leo0 -> (ISL) -> a satellite that sees the UAV
    -> UAV -> user, every hop at sample level, and arrives."""
    s = _run(tmp_path, "--set", "tasks.arrival=frames", "--set", "images.interval_s=480", "--set",
             "images.size_px=64", "--set", 'scenario.users=[{name = "user0", position_m = [120.0, 80.0, 0.0]}]',
             "--set", "tasks.quality_min_db=[18.0, 20.0]")
    (t,) = s["tasks"]
    nodes = t["route"].split("->")
    assert nodes[0] == "leo0" and nodes[1].startswith("leo") and len(nodes) == 4, t["route"]
    assert len(t["mcs"].split(" / ")) == 3 and t["met_quality"], t
    assert len(t["trail"]["routes_considered"]) >= 2
    isl = next(lk for lk in s["links"] if lk["link"] == f"{nodes[0]}->{nodes[1]}")
    assert isl["bler"] < 0.5


def test_greedy_takes_the_nearest_uav_and_the_highest_satellite():
    from sagin_hil.controllers import get_controller
    from sagin_hil.datatypes import ControllerState, Route, Task

    task = Task(task_id=0, image=None, source="leo0", destination="user0", deadline_s=5.0, quality_min_db=20.0,
                shape=(64, 64, 3))
    routes = [Route(("leo0", "uav1", "user0")), Route(("leo0", "leo1", "uav0", "user0")), Route(("leo0", "uav0", "user0"))]
    links = sorted({h for r in routes for h in r.links})
    state = ControllerState(tasks=[task], routes={0: routes}, predicted_snr_db={h: 15.0 for h in links},
                            bandwidth_hz={h: 10e6 for h in links},
                            positions_m={"user0": (0, 0, 0), "uav0": (100, 0, 50), "uav1": (3000, 0, 50)},
                            elevation_deg={"leo0->uav0": 40.0, "leo1->uav0": 70.0, "leo0->uav1": 80.0})
    alloc = get_controller("greedy").allocate(state).allocations[0]
    assert alloc.route.nodes == ("leo0", "leo1", "uav0", "user0")  # nearest UAV; over it leo1 is the highest


def _relay_like_state():
    from sagin_hil.datatypes import ControllerState, Route, Task

    tasks = [Task(task_id=i, image=None, source="leo0", destination=f"user{i}", deadline_s=5.0, quality_min_db=20.0)
             for i in range(2)]
    routes = {i: [Route(("leo0", "uav0", f"user{i}")), Route(("leo1", "uav0", f"user{i}")),
                  Route(("leo0", "uav1", f"user{i}"))] for i in range(2)}
    links = sorted({h for rs in routes.values() for r in rs for h in r.links})
    return ControllerState(tasks=tasks, routes=routes, bandwidth_hz={h: 10e6 for h in links},
                           power_w={"leo0": 1.0, "leo1": 1.0, "uav0": 0.2, "uav1": 0.2},
                           positions_m={"uav0": (0, 0, 50), "uav1": (3000, 0, 50)},
                           uav_limits={"uav0": (45.0, 60.0, 10.0), "uav1": (45.0, 60.0, 10.0)},
                           context={"slot_s": 10.0})


def test_plans_that_break_the_constraints_are_named():
    from sagin_hil.controllers.constraints import plan_violations
    from sagin_hil.datatypes import Allocation, HopAllocation, Plan, Route

    state = _relay_like_state()
    r = state.routes
    ok = Plan({0: Allocation(0, r[0][0]), 1: Allocation(1, r[1][0])}, waypoints_m={"uav0": (50.0, 0.0, 55.0)})
    assert plan_violations(state, ok) == []
    bad = Plan({0: Allocation(0, r[0][0], hops={"uav0->user0": HopAllocation(power_w=5.0, bandwidth_hz=2e7)}),
                1: Allocation(1, r[1][1])},
               waypoints_m={"uav0": (0.0, 0.0, 200.0), "uav1": (3000.0, 500.0, 50.0), "uav9": (0.0, 0.0, 50.0)})
    text = "\n".join(plan_violations(state, bad))
    assert "(15a) uav0 is paired with leo0 and leo1" in text
    assert "(15e) task 0: uav0->user0 power 5 W exceeds uav0's 0.2 W" in text and "bandwidth 2e+07 Hz" in text
    assert "(15f) uav0 waypoint altitude 200 m is outside [45, 60] m" in text
    assert "(15g) uav1 waypoint is 500 m away: more than v_max 10 m/s x 10 s" in text
    assert "'uav9', which is not a UAV" in text
    foreign = Plan({0: Allocation(0, Route(("leo3", "uav0", "user0")))})
    assert "(15d) task 0: route leo3->uav0->user0 is not one of its candidates" in plan_violations(state, foreign)[0]


def test_controllers_that_decide_task_by_task_keep_the_pairings():
    from sagin_hil.controllers import get_controller
    from sagin_hil.controllers.constraints import plan_violations

    state = _relay_like_state()
    for algo in ("random", "link-adaptation"):
        for seed in range(5):
            ctl = get_controller(algo, seed=seed) if algo == "random" else get_controller(algo)
            assert plan_violations(state, ctl.allocate(state)) == [], algo


def test_a_rejected_plan_is_not_carried_out_and_the_run_goes_on(tmp_path, monkeypatch):
    from sagin_hil.controllers import CONTROLLERS
    from sagin_hil.controllers.baselines import FixedRobust

    class Climber(FixedRobust):
        """Sends every UAV to 500 m, far above the scenario's 60 m ceiling."""

        def allocate(self, state):
            plan = super().allocate(state)
            plan.waypoints_m = {u: (0.0, 0.0, 500.0) for u in state.uav_limits}
            return plan

    monkeypatch.setitem(CONTROLLERS._entries, "climber", (Climber, {}))
    s = _run(tmp_path, "--set", "controller.algo=climber", flowgraph=SMALL)
    rejected = s["controllers"]["climber"]["rejected_plans"]
    assert len(rejected) == 2 and "(15f) uav0 waypoint altitude 500 m is outside [45, 60] m" in rejected[0]["violations"]
    assert all(t["fallback"] and "was rejected" in t["trail"]["why"] for t in s["tasks"])
    assert all(t["bits"] > 0 for t in s["tasks"])  # carried on the safe default


def test_sagin_000_tasks_arrive_at_every_leo_and_queue(tmp_path):
    """FTP Model 3 arrivals at every LEO of the reference SAGIN: tasks from LEOs that no longer see a UAV are
    handed over ISLs, and a task never starts on a transmitter before the one ahead of it has finished."""
    s = _run(tmp_path, "sagin-000", "--set", "tasks.count=4", "--set", "controller.compare=[]",
             "--set", "images.size_px=64")
    tasks = s["tasks"]
    assert len(tasks) == 4 and len({t["route"].split("->")[0] for t in tasks}) >= 2  # several source LEOs
    busy: dict[str, float] = {}
    for t in sorted(tasks, key=lambda t: t["timeline"][0]["start_s"]):
        for stage in t["timeline"]:
            if stage["stage"] == "hop":
                tx = stage["link"].split("->")[0]
                assert stage["start_s"] >= busy.get(tx, -1.0) - 1e-9 and stage["queue_s"] >= 0
                busy[tx] = stage["start_s"] + stage["air_s"]
    # the report's map: every satellite's ground track, the UAV paths and the users
    assert set(s["map"]["leo_tracks"]) == {f"leo{k}" for k in range(5)} and len(s["map"]["users"]) == 8
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "map.png").read_bytes()[:4] == b"\x89PNG" and "map.png" in (run_dir / "index.html").read_text()


@pytest.mark.parametrize("flowgraph, words", [
    ('[[scenario.satellites]]\nname = "leo0"\naltitude_km = 750.0\ninclination_deg = 53.0\nzenith_time_s = 5000.0\n',
     ["leo0 never rises above the minimum elevation over uav0", "min_elevation_deg"]),
    ('[[scenario.uavs]]\nname = "uav0"\nposition_m = [0.0, 0.0, 50.0]\naltitude_min_m = 60.0\naltitude_max_m = 45.0\n',
     ["altitude_min_m = 60.0 is above altitude_max_m = 45.0"]),
    ('[scenario]\nusers = []\n', ["needs at least one satellite, UAV and user", "5, 3 and 0"]),
])
def test_a_world_that_cannot_carry_a_task_is_named(tmp_path, flowgraph, words):
    out = " ".join(_run(tmp_path, "--images", "1", flowgraph=flowgraph, expect=2).split())
    assert "Traceback" not in out
    for w in words:
        assert w in out, (w, out)
