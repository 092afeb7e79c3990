"""The link abstraction and its RL forms (controllers/abstraction.py, controllers/env.py, docs/environment.md)."""

import numpy as np
import pytest

from sagin_hil.calibration.bler import BlerTable
from sagin_hil.codecs.modes import load_mode_table
from sagin_hil.controllers.abstraction import DEFAULT_MODES, SaginWorld, candidate_routes_at
from sagin_hil.controllers.env import (
    ENV_ID,
    SaginEnv,
    SaginParallelEnv,
    SaginVecEnv,
    measure_env_throughput,
    plan_to_action,
)
from sagin_hil.controllers.link_adaptation import LinkAdaptation
from sagin_hil.controllers.world import candidate_routes
from sagin_hil.datatypes import ControllerState, Route, Task, link_id


def _names(world):
    tb = world.tables
    return tb.sats + tb.uavs + tb.users


def _route_names(world, r):
    """Node-index tuple (LEO [, LEO], UAV, user) -> node names."""
    tb = world.tables
    *leos, n, m = r
    return tuple([tb.sats[k] for k in leos] + [tb.uavs[n], tb.users[m]])


def _set_tasks(world, tasks, image=0):
    """Replace environment 0's tasks by `tasks` = [(arrival_s, source, user, D_max, Q_min)], all of pool image
    `image`."""
    G = len(tasks)
    world.image = np.full((1, G), image, np.intp)
    world.arrival_s = np.array([[t[0] for t in tasks]], float)
    world.source = np.array([[t[1] for t in tasks]], np.intp)
    world.user = np.array([[t[2] for t in tasks]], np.intp)
    world.deadline_s = np.array([[t[3] for t in tasks]], float)
    world.q_min_db = np.array([[t[4] for t in tasks]], float)
    world.done = np.zeros((1, G), bool)
    world._refresh()


def test_check_env_passes_and_is_registered():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    env = SaginEnv()
    check_env(env, skip_render_check=True)
    assert ENV_ID in gym.registry
    assert isinstance(gym.make(ENV_ID).unwrapped, SaginEnv)


def test_same_seed_same_trajectory():
    runs = []
    for _ in range(2):
        env = SaginEnv()
        obs, _ = env.reset(seed=3)
        env.action_space.seed(5)
        traj = [obs]
        for _ in range(30):
            obs, r, term, trunc, info = env.step(env.action_space.sample())
            traj += [obs, np.array([r])]
        runs.append(np.concatenate([np.ravel(x) for x in traj]))
    np.testing.assert_array_equal(runs[0], runs[1])
    a, b = SaginEnv(), SaginEnv()
    a.reset(seed=3), b.reset(seed=4)
    assert not np.array_equal(a.world.arrival_s[:, :5], b.world.arrival_s[:, :5])  # the seed draws the tasks


def test_return_is_the_scc_of_every_dispatched_task():
    """Eq. 18 pays each task's SCC once, in the slot it finishes (the horizon pays what is still in flight)."""
    env = SaginEnv(horizon_s=30.0)
    env.reset(seed=2)
    env.action_space.seed(2)
    paid, earned, trunc = 0.0, 0.0, False
    while not trunc:
        _, r, _, trunc, _ = env.step(env.action_space.sample())
        last = env.world.last
        paid += r
        earned += float(last["scc"][last["ok"]].sum())
    assert paid == pytest.approx(earned, abs=1e-9)


@pytest.mark.parametrize("t_s", [0.0, 60.0, 150.0])
def test_candidate_routes_equal_world(t_s):
    world = SaginWorld(1)
    tb, sc = world.tables, world.tables.scenario
    i = int(tb.index(t_s))
    for k, src in enumerate(tb.sats):
        for m, user in enumerate(tb.users):
            ours = [_route_names(world, r) for r in candidate_routes_at(tb, i, k, m)]
            assert ours == [r.nodes for r in candidate_routes(sc, src, user, t_s)]
    # the vectorised check of a chosen route agrees with membership in that list
    world.t_s = t_s
    world._refresh()
    combos = [(k, l, n, m) for k in range(world.K) for l in range(world.K) for n in range(world.N)
              for m in range(world.M)]
    a = np.array(combos).T[:, None, :]
    ok = world.route_ok(a[0], a[1], a[2], a[3])[0]
    for (k, l, n, m), got in zip(combos, ok):
        cands = candidate_routes_at(tb, i, k, m)
        want = ((k, n, m) if l == k else (k, l, n, m)) in cands
        assert got == want, (k, l, n, m)


def _la_state(world, route, t_s):
    tb = world.tables
    i = int(tb.index(t_s))
    idx = {n: j for j, n in enumerate(_names(world))}
    snr, prop, bw = {}, {}, {}
    ag_snr, ag_delay = tb.air_ground(tb.uav_home_m)
    for a, b in zip(route.nodes, route.nodes[1:]):
        h = link_id(a, b)
        ka, kb = idx[a], idx[b]
        if b in tb.sats:
            snr[h], prop[h], bw[h] = tb.isl_snr_db[i, ka, kb], tb.isl_delay_s[i, ka, kb], tb.isl_bandwidth_hz
        elif b in tb.uavs:
            n = kb - world.K
            snr[h], prop[h], bw[h] = tb.sa_snr_db[i, ka, n], tb.sa_delay_s[i, ka, n], tb.sa_bandwidth_hz
        else:
            n, m = ka - world.K, kb - world.K - world.N
            snr[h], prop[h], bw[h] = ag_snr[n, m], ag_delay[n, m], tb.ag_bandwidth_hz
    return snr, prop, bw


@pytest.mark.parametrize("route_nodes,t_s", [(("leo0", "uav0", "user1"), 60.0),
                                             (("leo0", "leo1", "uav1", "user3"), 100.0),
                                             (("leo2", "uav2", "user6"), 150.0)])
@pytest.mark.parametrize("mode", DEFAULT_MODES + ("jscc-1/12", "jscc-1/6"))
@pytest.mark.parametrize("d_max,q_min", [(2.5, 12.0), (9.0, 28.0), (4.0, 35.0)])
@pytest.mark.parametrize("image", [0, 2])
def test_prediction_equals_link_adaptation(route_nodes, t_s, mode, d_max, q_min, image):
    """A task dispatched on arrival with an idle network: the world's delay and PSNR are link adaptation's,
    both planning with the task image's own quality profile; analog (JSCC) modes at the amplify-and-forward SNR."""
    world = SaginWorld(1, modes=DEFAULT_MODES + ("jscc-1/12", "jscc-1/6"))
    assert len(world.pool_profiles) >= 3, "the shipped held-out image profiles are the pool"
    route = Route(route_nodes)
    snr, prop, bw = _la_state(world, route, t_s)
    task = Task(0, None, route.source, route.user, deadline_s=d_max, quality_min_db=q_min, arrival_s=t_s,
                quality=world.pool_profiles[image])
    state = ControllerState(time_s=t_s, tasks=[task], routes={0: [route]}, modes=[mode],
                            predicted_snr_db={h: float(v) for h, v in snr.items()},
                            propagation_delay_s={h: float(v) for h, v in prop.items()},
                            bandwidth_hz=bw, rolloff=0.25)
    la = LinkAdaptation(target_bler=0.1, bler_table=BlerTable.load(), mode_table=load_mode_table())
    alloc, trail = la._route(task, route, state)
    # the same task through the world: the action that carries it on this route in this mode
    idx = {n: j for j, n in enumerate(_names(world))}
    world.t_s = t_s
    _set_tasks(world, [(t_s, idx[route.source], idx[route.user] - world.K - world.N, d_max, q_min)], image)
    a = plan_to_action(world, {0: route.nodes}, {0: mode})
    assert world.modes[a["mode"][0]] == mode
    world.step(a["uav_leo"][None], a["user_uav"][None], a["isl"][None], a["mode"][None], a["waypoint"][None])
    last = world.last
    assert last["ok"][0, 0], "the route is a candidate, so the task is dispatched"
    assert last["delay_s"][0, 0] == pytest.approx(alloc.predicted["delay_s"], abs=1e-6)
    delivers = last["pred"]["delivers"][0, 0]
    assert delivers == (trail["candidates"][mode]["delivers"])
    assert last["pred"]["psnr_db"][0, 0] == pytest.approx(alloc.predicted["psnr_db"], abs=1e-6)
    if delivers:
        assert last["psnr_db"][0, 0] == pytest.approx(alloc.predicted["psnr_db"], abs=1e-6)
        assert last["scc"][0, 0] == pytest.approx(alloc.predicted["scc"], abs=1e-6)
    else:  # a hop below its BLER target delivers nothing
        assert np.isnan(last["psnr_db"][0, 0]) and last["scc"][0, 0] == 0.0
    mcs = [world.predictor.mcs[i].name for i, on in zip(last["pred"]["mcs"][0, 0], [len(route.nodes) == 4, 1, 1])
           if on]
    assert mcs == [trail["mcs"][h] for h in route.links]


def test_second_task_on_a_busy_transmitter_waits():
    world = SaginWorld(1)
    world.t_s = 60.0
    # two tasks from leo0 to users 0 and 1, both through uav0: they share leo0's and uav0's transmitters
    _set_tasks(world, [(60.0, 0, 0, 11.0, 10.0), (60.0, 0, 1, 11.0, 10.0)])
    a = plan_to_action(world, {0: ("leo0", "uav0", "user0"), 1: ("leo0", "uav0", "user1")},
                       {0: "mode3_3", 1: "mode3_3"})
    world.step(a["uav_leo"][None], a["user_uav"][None], a["isl"][None], a["mode"][None], a["waypoint"][None])
    last = world.last
    assert last["ok"][0, :2].tolist() == [True, True]
    alone = last["pred"]["delay_s"][0]
    assert last["delay_s"][0, 0] == pytest.approx(alone[0], abs=1e-9)  # the first finds the network idle
    air_first_on_leo0 = last["pred"]["air_s"][0, 0, 1]
    assert last["delay_s"][0, 1] >= alone[1] + air_first_on_leo0 - 1e-9  # the second waits for leo0


def test_constraint_breaking_plans_are_rejected_and_unchosen_isl_waits():
    world = SaginWorld(1)
    world.t_s = 100.0
    _set_tasks(world, [(100.0, 0, 0, 11.0, 10.0), (100.0, 1, 1, 11.0, 10.0)])
    with pytest.raises(ValueError, match=r"\(15a\) uav0"):
        plan_to_action(world, {0: ("leo0", "uav0", "user0"), 1: ("leo1", "uav0", "user1")}, {})
    with pytest.raises(ValueError, match=r"\(15b\) user0"):
        plan_to_action(world, {0: ("leo0", "uav0", "user0"), 1: ("leo1", "uav1", "user0")}, {})
    # an action whose UAV is served by another LEO, without the ISL to it: the task waits (rejected)
    a = plan_to_action(world, {0: ("leo0", "uav0", "user0")}, {})
    a["uav_leo"][0] = 1
    a["isl"][0] = 0
    r = world.step(a["uav_leo"][None], a["user_uav"][None], a["isl"][None], a["mode"][None], a["waypoint"][None])
    assert not world.last["ok"][0, 0] and r.rejected[0] >= 1
    with pytest.raises(ValueError, match="uav_leo"):
        world.step(a["uav_leo"][None] + 99, a["user_uav"][None], a["isl"][None], a["mode"][None],
                   a["waypoint"][None])


def test_uavs_keep_speed_and_altitude_limits():
    world = SaginWorld(2)
    start = world.uav_m.copy()
    wp = np.ones((2, world.N, 3)) * 5.0
    z = np.zeros((2, world.N), np.intp)
    world.step(z, np.zeros((2, world.M), np.intp), np.tile(np.arange(world.K), (2, 1)),
               np.zeros((2, world.W), np.intp), wp)
    moved = np.linalg.norm(world.uav_m - start, axis=-1)
    assert np.all(moved <= world.tables.v_max_mps * world.slot_s + 1e-9)
    assert np.all(world.uav_m[..., 2] <= world.tables.alt_max_m)


def test_vector_env_equals_single_envs():
    E, seed = 3, 10
    vec = SaginVecEnv(E)
    singles = [SaginEnv() for _ in range(E)]
    obs, _ = vec.reset(seed=seed)
    for i, s in enumerate(singles):
        np.testing.assert_array_equal(obs[i], s.reset(seed=seed + i)[0])
    vec.action_space.seed(1)
    for _ in range(12):
        acts = vec.action_space.sample()
        obs, rew, term, trunc, _ = vec.step(acts)
        for i, s in enumerate(singles):
            o, r, _, tr, _ = s.step({k: v[i] for k, v in acts.items()})
            np.testing.assert_array_equal(obs[i], o)
            assert rew[i] == r and trunc[i] == tr


def test_parallel_env_api():
    pytest.importorskip("pettingzoo")
    from pettingzoo.test import parallel_api_test

    env = SaginParallelEnv(horizon_s=20.0)
    parallel_api_test(env, num_cycles=25)
    obs, _ = env.reset(seed=1)
    assert sorted(obs) == sorted(env.possible_agents) == ["uav0", "uav1", "uav2"]


def test_throughput_is_measured():
    assert measure_env_throughput(n_envs=8, steps=20) > 0


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="jscc-1/13"):  # the registry's did-you-mean names the spelling
        SaginWorld(1, modes=("mode1", "jscc-1/13"))
    with pytest.raises(ValueError, match="window"):
        SaginWorld(1, window=0)


def test_air_ground_budget_follows_moved_uavs_like_link_state():
    from sagin_hil.phy.channel.scenario import Scenario

    world = SaginWorld(1)
    sc = Scenario.default()  # a fresh copy: move_uav changes it
    targets = {"uav0": (150.0, -80.0, 58.0), "uav2": (-40.0, 2700.0, 46.0)}
    for name, pos in targets.items():
        sc.move_uav(name, pos, 0.0)
    t = 1000.0  # every UAV has arrived and hovers
    pos = np.array([targets.get(u, tuple(world.tables.uav_home_m[n])) for n, u in enumerate(sc.uavs)])
    snr, delay = world.tables.air_ground(pos)
    for n, u in enumerate(sc.uavs):
        for m, user in enumerate(sc.users):
            st = sc.link_state(u, user, t)
            assert snr[n, m] == pytest.approx(st.snr_db, abs=1e-6)
            assert delay[n, m] == pytest.approx(st.delay_s, rel=1e-9)


def test_importing_controllers_does_not_load_the_environment():
    import subprocess
    import sys

    code = ("import sys, sagin_hil.controllers; "
            "bad = [m for m in ('gymnasium', 'pettingzoo', 'sagin_hil.controllers.env') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_space_links_and_candidate_routes_follow_moved_uavs():
    from sagin_hil.phy.channel.scenario import Scenario

    world = SaginWorld(1)
    tb = world.tables
    i = int(tb.index(100.0))
    snr, delay, elev, vis = tb.space_air(i, tb.uav_home_m)  # at home: the link_state tables
    np.testing.assert_allclose(snr, tb.sa_snr_db[i], atol=1e-6)
    np.testing.assert_allclose(elev, tb.sa_elev_deg[i], atol=1e-6)
    assert np.array_equal(vis, tb.sa_visible[i])
    sc = Scenario.default()
    targets = {"uav0": (250.0, -150.0, 60.0), "uav1": (2800.0, 150.0, 45.0)}  # < 300 m: arrived by t = 30 s
    for name, pos in targets.items():
        sc.move_uav(name, pos, 0.0)
    pos = np.array([targets.get(u, tuple(tb.uav_home_m[n])) for n, u in enumerate(sc.uavs)])
    for t_s in (60.0, 150.0):  # every UAV has arrived
        i = int(tb.index(t_s))
        snr, delay, elev, vis = tb.space_air(i, pos)
        for k, s in enumerate(sc.satellites):
            for n, u in enumerate(sc.uavs):
                st = sc.link_state(s, u, t_s)
                assert snr[k, n] == pytest.approx(st.snr_db, abs=1e-6)
                assert delay[k, n] == pytest.approx(st.delay_s, rel=1e-9)
                assert elev[k, n] == pytest.approx(st.elevation_deg, abs=1e-6) and vis[k, n] == st.visible
        for k, src in enumerate(sc.satellites):
            for m, user in enumerate(sc.users):
                ours = [_route_names(world, r) for r in candidate_routes_at(tb, i, k, m, pos)]
                assert ours == [r.nodes for r in candidate_routes(sc, src, user, t_s)]


def test_mcs_thresholds_equal_the_bler_table():
    pr = SaginWorld(1).predictor
    snr = np.concatenate([np.linspace(-20, 40, 4001), pr.threshold_db[np.isfinite(pr.threshold_db)],
                          np.nextafter(pr.threshold_db[np.isfinite(pr.threshold_db)], -np.inf), [-np.inf]])
    fast, ref = pr.choose_mcs(snr), pr.choose_mcs_by_table(snr)
    assert np.array_equal(fast[0], ref[0]) and np.array_equal(fast[1], ref[1])


def test_a_dispatched_task_is_dispatched_once():
    world = SaginWorld(1)
    world.t_s = 60.0
    _set_tasks(world, [(60.0, 0, 0, 11.0, 10.0)])  # task 0 with empty window slots behind it
    a = plan_to_action(world, {0: ("leo0", "uav0", "user0")}, {0: "mode3_1"})
    args = (a["uav_leo"][None], a["user_uav"][None], a["isl"][None], a["mode"][None], a["waypoint"][None])
    paid = world.step(*args).reward[0] + sum(world.step(*args).reward[0] for _ in range(15))
    assert world.done[0, 0] and world.last["ok"].sum() == 0
    assert paid == pytest.approx(world.scc[0, 0]) and paid > 0


def _greedy(env):
    """Each UAV takes its highest LEO, each user its nearest UAV, each source the ISL its oldest task needs."""
    w = env.world
    uav_leo = np.argmax(w.sa_elev_deg[0], axis=0)
    user_uav = np.argmin(np.linalg.norm(w.uav_m[0][:, None, :] - w.tables.user_m[None], axis=-1), axis=0)
    isl = np.arange(w.K)
    src, usr = w._take(w.source)[0], w._take(w.user)[0]
    for j in range(w.W - 1, -1, -1):
        if w.win_valid[0, j]:
            isl[src[j]] = uav_leo[user_uav[usr[j]]]
    return {"uav_leo": uav_leo, "user_uav": user_uav, "isl": isl, "mode": np.zeros(w.W, np.int64),
            "waypoint": np.zeros((w.N, 3), np.float32)}


def test_a_sensible_policy_beats_random():
    """The reward is informative: pairing by geometry with Mode 1 earns far more SCC than random actions."""
    returns = {}
    for name in ("greedy", "random"):
        env = SaginEnv(horizon_s=80.0)
        env.reset(seed=1)
        env.action_space.seed(1)
        ret, trunc = 0.0, False
        while not trunc:
            _, r, _, trunc, _ = env.step(_greedy(env) if name == "greedy" else env.action_space.sample())
            ret += r
        returns[name] = ret
    assert returns["greedy"] > 2 * returns["random"] + 1.0, returns


def test_link_adaptation_plans_on_the_abstraction():
    """controller_state -> LinkAdaptation.allocate -> plan_to_action: the world realises what it predicted."""
    world = SaginWorld(1)
    world.t_s = 100.0
    _set_tasks(world, [(100.0, 1, 4, 6.0, 20.0)])
    state = world.controller_state(0)
    assert [t.task_id for t in state.tasks] == [0] and state.routes[0]
    plan = LinkAdaptation(bler_table=BlerTable.load(), mode_table=load_mode_table()).allocate(state)
    alloc = plan.allocations[0]
    world.step(*(v[None] for v in plan_to_action(world, plan).values()))
    last = world.last
    assert last["ok"][0, 0]
    assert last["delay_s"][0, 0] == pytest.approx(alloc.predicted["delay_s"], abs=1e-6)
    assert last["scc"][0, 0] == pytest.approx(alloc.predicted["scc"], abs=1e-6)


def test_vector_env_resets_in_the_step_that_ends_the_episode():
    vec = SaginVecEnv(2, horizon_s=3.0)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    for k in range(3):
        obs, _, term, trunc, info = vec.step(vec.action_space.sample())
    assert trunc.all() and not term.any()
    t_field = slice(0, 1)  # obs_layout starts with time / horizon
    assert np.allclose(info["final_obs"][:, t_field], 1.0) and np.allclose(obs[:, t_field], 0.0)


def test_uavs_deployed_around_their_areas():
    """uav_offset_m moves each UAV's start that far from its home (inside the area) in a direction of the
    episode's seed, and nothing else: the tasks drawn are the same, and 0 is the default world."""
    a, b = SaginWorld(3, horizon_s=10.0, uav_offset_m=1500.0), SaginWorld(3, horizon_s=10.0)
    a.reset([0, 1, 0])
    b.reset([0, 1, 0])
    off = np.linalg.norm(a.uav_m[..., :2] - a.tables.uav_home_m[:, :2], axis=-1)
    inside = np.all((a.uav_m[..., :2] > a.tables.area_lo_m) & (a.uav_m[..., :2] < a.tables.area_hi_m), axis=-1)
    assert np.allclose(off[inside], 1500.0) and np.all(off <= 1500.0 + 1e-9) and inside.sum() >= 4
    assert np.array_equal(a.uav_m[0], a.uav_m[2]) and not np.array_equal(a.uav_m[0], a.uav_m[1])  # per seed
    assert np.array_equal(b.uav_m, np.broadcast_to(b.tables.uav_home_m, b.uav_m.shape))
    for k in ("arrival_s", "user", "deadline_s", "q_min_db", "image"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    with pytest.raises(ValueError, match="uav_offset_m = -1.0 must be >= 0 metres"):
        SaginWorld(1, horizon_s=10.0, uav_offset_m=-1.0)
