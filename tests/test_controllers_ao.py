"""AO for the semantic relay (paper 001): every subproblem against cvxpy, monotone ascent, baselines."""

import math
import warnings

import numpy as np
import pytest

from sagin_hil.controllers import ao_solvers as S
from sagin_hil.controllers import get_controller
from sagin_hil.controllers.ao import AlternatingOptimizer, RelayScenario
from sagin_hil.datatypes import Task

cvx = pytest.importorskip("cvxpy")
from sagin_hil.controllers import bench as B  # noqa: E402  (imports cvxpy lazily, in its functions)

warnings.filterwarnings("ignore", message="Solution may be inaccurate")
REL = 1e-4


def _scenario(seed=3, n=3, n_sem=2, n_con=2, **kw):
    scn = RelayScenario.random(n_clusters=n, n_sem=n_sem, n_con=n_con, seed=seed, **kw)
    scn.is_semantic[-1, :] = True  # one cluster of SemUsers only: a kind may be absent
    return scn


@pytest.fixture(scope="module")
def mid_point():
    """A point part-way through the AO (unequal resources), where the blocks have something to do."""
    scn = _scenario()
    ao = AlternatingOptimizer(scn, scheme="paper", max_iter=1, extrapolate=False)
    res = ao.run()
    return scn, res.x, res.q


def _obj(x, c):
    return S.objective(x, c["a"])


def _check_feasible(scn, x, c, tol=1e-7):
    m = scn.shape[1]
    prm = c["prm"]
    b, p, t = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m], x[:, 2 + 2 * m:]
    assert np.all(x >= -tol)
    assert np.all(t <= S.rates(x, c["s"]) + tol)
    assert np.all((c["a"] * t).sum(1) <= S.sat_rate(x, c["G"], prm) + tol)
    assert np.all(x[:, 0] + b.sum(1) <= 1 + tol) and x[:, 0].sum() <= prm[5] + tol and x[:, 1].sum() <= 1 + tol
    assert np.all(p.sum(1) + prm[4] * ((c["phi"] * t).sum(1)) ** 3 <= 1 + tol)


@pytest.mark.parametrize("block", ["bandwidth", "power", "resources"])
def test_block_matches_cvxpy(mid_point, block):
    scn, x, q = mid_point
    c = scn.constants(q)
    ours, steps = getattr(S, f"solve_{block}")(x, c, scn.is_semantic)
    peer, _ = getattr(B, f"cvxpy_{block}")(x, c, scn.is_semantic)
    assert steps > 0
    _check_feasible(scn, ours, c)
    assert _obj(ours, c) == pytest.approx(_obj(peer, c), rel=REL)
    assert _obj(ours, c) >= _obj(x, c) * (1 - 1e-6)  # solved to a duality gap of 1e-7 x objective
    m = scn.shape[1]
    if block != "power":  # Lemma 2 of paper 001: the per-cluster bandwidth budget is tight at the optimum
        assert np.allclose(ours[:, 0] + ours[:, 2:2 + m].sum(1), 1.0, atol=1e-6)
    # the block leaves the other variables alone
    fixed = {"bandwidth": [1] + list(range(2 + m, 2 + 2 * m)), "power": [0] + list(range(2, 2 + m)),
             "resources": []}[block]
    assert np.array_equal(ours[:, fixed], x[:, fixed])


def test_aux_rates_matches_the_linear_program(mid_point):
    scn, x, q = mid_point
    c = scn.constants(q)
    ours = S.aux_rates(x, c["s"], c["a"], c["phi"], c["G"], c["prm"])
    _check_feasible(scn, ours, c)
    assert _obj(ours, c) == pytest.approx(_obj(B.cvxpy_rates(x, c), c), rel=REL)


def test_position_step_is_the_qp_optimum_and_raises_the_weighted_rate(mid_point):
    scn, x, q = mid_point
    c = scn.constants(q)
    m = scn.shape[1]
    b, p = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m]
    k = np.where(b > 0, c["k_num"] * p / np.where(b > 0, b, 1), 0)
    h2 = scn.uav_height_m ** 2
    q0 = q + 300.0  # start away from the optimum
    ours = S.centroid_step(q0, scn.users_xy_m, c["a"], k, b, h2)
    peer = B.cvxpy_centroid(q0, scn.users_xy_m, c["a"], k, b, h2)
    assert np.abs(ours - peer).max() < 1e-3  # metres

    def weighted(qq):
        d2 = h2 + ((scn.users_xy_m - qq[:, None, :]) ** 2).sum(-1)
        return (c["a"] * b * np.log2(1 + k / d2)).sum()

    one = S.centroid_step(q0, scn.users_xy_m, c["a"], k, b, h2, n_iter=1)
    assert weighted(q0) < weighted(one) <= weighted(ours) + 1e-12
    # the fixed point is stationary: the gradient of the weighted rate vanishes there
    eps = 0.5
    for n in range(q.shape[0]):
        for ax in range(2):
            dq = np.zeros_like(q)
            dq[n, ax] = eps
            assert abs(weighted(ours + dq) - weighted(ours - dq)) / (2 * eps) < 1e-6 * weighted(ours)


@pytest.mark.parametrize("scheme", ["joint", "paper"])
@pytest.mark.parametrize("optimize", [("bandwidth", "power", "position"), ("power", "position"),
                                      ("bandwidth", "position"), ("bandwidth", "power")])
def test_objective_rises_monotonically(scheme, optimize):
    scn = _scenario(seed=5)
    res = AlternatingOptimizer(scn, optimize, scheme=scheme, max_iter=8, tol=0.0).run()
    h = np.array(res.history)
    assert np.all(np.diff(h) >= -1e-12 * h[:-1])
    if optimize != ("power", "position"):
        assert h[-1] > h[0] * 1.01  # it actually optimises
    c = scn.constants(res.q)
    _check_feasible(scn, res.x, c)
    assert res.sum_rate_bps == pytest.approx(_obj(res.x, c) * scn.uav_bandwidth_hz, rel=1e-9)


def test_whole_ao_matches_the_same_alternation_in_cvxpy():
    scn = _scenario(seed=7)
    ours = AlternatingOptimizer(scn).run()
    peer = AlternatingOptimizer(scn, solvers=B.CvxpyBlockSolvers(), max_iter=ours.iterations, tol=-1.0).run()
    assert ours.sum_rate_bps == pytest.approx(peer.sum_rate_bps, rel=REL)


def test_proposed_beats_every_baseline():
    for seed in (0, 1):
        scn = RelayScenario.random(seed=seed)
        full = AlternatingOptimizer(scn).run().sum_rate_bps
        for optimize in [("power", "position"), ("bandwidth", "position"), ("bandwidth", "power")]:
            assert full >= AlternatingOptimizer(scn, optimize).run().sum_rate_bps * (1 - 1e-9)


def test_similarity_is_the_logistic_the_solver_uses():
    scn = _scenario()
    snr_db = np.array([-10.0, scn.eps_mid_db, 30.0])
    eps = scn.similarity(snr_db)
    assert eps[1] == pytest.approx((scn.eps_low + scn.eps_high) / 2)
    assert scn.eps_low < eps[0] < eps[1] < eps[2] < scn.eps_high
    # sat_rate = (L / K) * B * eps(SNR) with SNR = G P / B
    c = scn.constants(scn.centroids())
    x = np.zeros((scn.shape[0], 2 + 3 * scn.shape[1]))
    x[:, 0], x[:, 1] = 0.3, 0.2
    snr = c["G"] * 0.2 / 0.3
    expect = scn.bits_per_unit / scn.symbols_per_unit * 0.3 * scn.similarity(10 * np.log10(snr))
    assert np.allclose(S.sat_rate(x, c["G"], c["prm"]), expect, rtol=1e-12)


def _relay_state(scn, rolloff=0.25):
    """A ControllerState describing `scn`: one task per user, LEO "leo0", UAVs "uav{i}" at the centroids, the
    satellite hops' SNR predicted from scn.sat_gain_db at the nominal power and bandwidth (Es/N0 at B / (1 +
    rolloff))."""
    from sagin_hil.datatypes import ControllerState, Route, link_id

    n, m = scn.shape
    n0 = 10 ** (scn.noise_psd_dbm_hz / 10) / 1000
    tasks, routes, pos, kind, pred, bw = [], {}, {}, {}, {}, {}
    for i in range(n):
        uav = f"uav{i}"
        pos[uav] = (*scn.centroids()[i], scn.uav_height_m)
        sat_link = link_id("leo0", uav)
        bw[sat_link] = scn.sat_bandwidth_hz
        snr_b = scn.sat_power_w * 10 ** (scn.sat_gain_db[i] / 10) / (n0 * scn.sat_bandwidth_hz)
        pred[sat_link] = 10 * math.log10(snr_b * (1 + rolloff))
        for k in range(m):
            user, tid = f"user{i}_{k}", i * m + k
            pos[user] = (*scn.users_xy_m[i, k], 0.0)
            kind[user] = "semantic" if scn.is_semantic[i, k] else "conventional"
            bw[link_id(uav, user)] = scn.uav_bandwidth_hz
            tasks.append(Task(task_id=tid, image=None, source="leo0", destination=user, deadline_s=5.0,
                              quality_min_db=20.0, shape=(256, 256, 3)))
            routes[tid] = [Route(("leo0", uav, user))]
    return ControllerState(tasks=tasks, routes=routes, modes=["mode1", "mode3_2"], positions_m=pos,
                           predicted_snr_db=pred, bandwidth_hz=bw, rolloff=rolloff,
                           power_w={"leo0": scn.sat_power_w, **{f"uav{i}": scn.uav_power_w for i in range(n)}},
                           user_kind=kind,
                           context={"relay": {"noise_psd_dbm_hz": scn.noise_psd_dbm_hz, "beta0_db": scn.beta0_db}})


def test_the_relay_system_is_read_back_from_the_controller_state():
    from sagin_hil.controllers.ao import relay_system

    scn = _scenario(seed=11)
    back, uavs, clusters = relay_system(_relay_state(scn))
    assert uavs == [f"uav{i}" for i in range(scn.shape[0])]
    np.testing.assert_allclose(back.users_xy_m, scn.users_xy_m)
    np.testing.assert_array_equal(back.is_semantic, scn.is_semantic)
    np.testing.assert_allclose(back.sat_gain_db, scn.sat_gain_db, atol=1e-9)
    assert back.uav_height_m == scn.uav_height_m and back.uav_bandwidth_hz == scn.uav_bandwidth_hz
    assert back.sat_bandwidth_hz == scn.sat_bandwidth_hz and back.sat_power_w == scn.sat_power_w
    assert [len(c) for c in clusters] == [scn.shape[1]] * scn.shape[0]


def test_controller_plan_respects_the_budgets():
    ctl = get_controller("ao")
    scn = _scenario(seed=11)
    state = _relay_state(scn)
    plan = ctl.allocate(state)
    n, m = scn.shape
    assert sorted(plan.allocations) == list(range(n * m))
    assert ctl.last_result.sum_rate_bps == pytest.approx(AlternatingOptimizer(scn).run().sum_rate_bps, rel=1e-6)
    sat_bw, sat_p = 0.0, 0.0
    for i in range(n):
        allocs = [plan.allocations[i * m + k] for k in range(m)]
        sat = allocs[0].hop(f"leo0->uav{i}")
        assert all(a.hop(f"leo0->uav{i}") == sat for a in allocs)  # one satellite hop per cluster
        sat_bw, sat_p = sat_bw + sat.bandwidth_hz, sat_p + sat.power_w
        users = [a.hop(f"uav{i}->user{i}_{k}") for k, a in enumerate(allocs)]
        used = sat.bandwidth_hz + sum(u.bandwidth_hz for u in users if u.bandwidth_hz > 1.0)
        assert used <= scn.uav_bandwidth_hz * (1 + 1e-6)
        assert sum(u.power_w for u in users) <= scn.uav_power_w * (1 + 1e-6)
        assert plan.waypoints_m[f"uav{i}"][2] == scn.uav_height_m
        for k, a in enumerate(allocs):
            assert a.mode == ("mode3_2" if scn.is_semantic[i, k] else "mode1")
            assert a.predicted["equivalent_rate_bps"] == pytest.approx(a.predicted["semantic_gain"] * a.predicted["rate_bps"])
    assert sat_bw <= scn.sat_bandwidth_hz * (1 + 1e-6) and sat_p <= scn.sat_power_w * (1 + 1e-6)
    total = sum(a.predicted["equivalent_rate_bps"] for a in plan.allocations.values())
    assert total == pytest.approx(ctl.last_result.sum_rate_bps, rel=1e-9)


def test_delivered_rates_at_the_models_own_hop_rates_give_the_ao_objective():
    """The sum rate the runner measures goes through `delivered_rates`; fed the model's own Shannon hop rates
    it must reproduce the AO's objective (so predicted and measured are judged alike)."""
    from sagin_hil.controllers.ao import delivered_rates

    scn = _scenario(seed=5)
    res = AlternatingOptimizer(scn).run()
    c = scn.constants(res.q)
    n, m = scn.shape
    x, bu = res.x, scn.uav_bandwidth_hz
    b, p = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m]
    r_user = np.where(b > 0, b * np.log2(1 + c["s"] * p / np.where(b > 0, b, 1)), 0) * bu
    prm, g = c["prm"], c["G"] * x[:, 1]
    r_sat = prm[0] * (prm[1] * x[:, 0] + prm[2] * x[:, 0] * g / (g + prm[3] * x[:, 0])) * bu
    got = delivered_rates(scn, x, r_user, r_sat)
    np.testing.assert_allclose(got, x[:, 2 + 2 * m:] * bu, rtol=1e-6, atol=1e-3)
    assert (c["a"] * got).sum() == pytest.approx(res.sum_rate_bps, rel=1e-9)
    assert delivered_rates(scn, x, r_user, np.zeros(n)).sum() == 0.0  # no satellite hop, nothing delivered


def test_bad_scenarios_are_refused():
    with pytest.raises(ValueError, match="uav_power_w"):
        RelayScenario.random(uav_power_w=0.0)
    with pytest.raises(ValueError, match="shapes"):
        RelayScenario(np.zeros((2, 3, 2)), np.zeros((2, 4), bool), np.zeros(2))
    with pytest.raises(ValueError, match="unknown AO block"):
        AlternatingOptimizer(_scenario(), ("bandwidth", "altitude"))


def test_sweep_keeps_the_papers_ordering_and_writes_plots(tmp_path):
    from sagin_hil.controllers import sweep as SW

    res = SW.sweep("uav_power_w", np.array([0.3, 1.5]), n_seeds=1)
    assert res["ordering_holds"]
    prop = res["mean"]["proposed"]
    assert prop[1] > prop[0]  # more UAV power, more rate
    SW._plot(res, "UAV power P_U (W)", 1.0, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_controller_schema_and_agreement():
    from sagin_hil.benchmarks import validate_results

    res = validate_results(B.bench_controller(quick=True))
    entry = res["benchmarks"][0]  # then the learned policies' decision times (tests/test_rl_controllers.py)
    assert entry["name"] == "ao_5x8"
    assert entry["ours"]["ms"] > 0 and entry["peers"]["cvxpy"]["ms"] > 0
    assert entry["ratio"]["cvxpy"] == pytest.approx(entry["peers"]["cvxpy"]["ms"] / entry["ours"]["ms"])
    assert entry["ours"]["objective"] == pytest.approx(entry["peers"]["cvxpy"]["objective"], rel=REL)


def test_measured_satellite_snr_recalibrates_the_gain():
    from sagin_hil.datatypes import LinkReport

    ctl = get_controller("ao")
    scn = _scenario(seed=2)
    state = _relay_state(scn)
    ctl.allocate(state)
    rate_before = ctl.last_result.sum_rate_bps
    worse = state.predicted_snr_db["leo0->uav0"] - 10.0  # the receiver measured 10 dB less than the model
    state.reports = {"leo0->uav0": LinkReport("leo0->uav0", time_s=1.0, snr_db=worse)}
    ctl.allocate(state)
    assert ctl.last_scenario.sat_gain_db[0] == pytest.approx(scn.sat_gain_db[0] - 10.0, abs=1e-9)
    assert ctl.last_scenario.sat_gain_db[1] == pytest.approx(scn.sat_gain_db[1])
    assert ctl.last_result.sum_rate_bps < rate_before
