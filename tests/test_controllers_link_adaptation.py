"""Link adaptation: MCS from measured SNR against a BLER table, JPEG 2000 budget from D_max and Q_min."""

import math

import numpy as np
import pytest

from sagin_hil.controllers import get_controller
from sagin_hil.controllers.link_adaptation import RateQualityTable
from sagin_hil.datatypes import LinkReport, Task
from sagin_hil.phy.mcs import MCS_TABLE, get_mcs


class LogisticBler:
    """A small BLER table built for the tests: each MCS has a waterfall 1.5 dB above the Shannon SNR of
    its spectral efficiency, 1 decade per 0.5 dB."""

    def required_snr_db(self, name, target=0.5):
        se = get_mcs(name).spectral_efficiency
        return 10 * math.log10(2**se - 1) + 1.5

    def bler(self, name, snr_db):
        return 1.0 / (1.0 + 10 ** ((snr_db - self.required_snr_db(name)) / 0.5))


QUALITY = {"bpp": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0], "psnr_db": [22.0, 24.5, 28.0, 31.0, 34.5, 38.0]}


@pytest.fixture
def ctl():
    return get_controller("link-adaptation", bler_table=LogisticBler(), quality_table=QUALITY, target_bler=1e-2)


def _task(deadline_s=5.0, quality_min_db=25.0):
    return Task(task_id=1, image=np.zeros((256, 256, 3), np.uint8), source="leo0", destination="user0",
                deadline_s=deadline_s, quality_min_db=quality_min_db)


ROUTE = ["leo0->uav0", "uav0->user0"]


def test_mcs_is_highest_meeting_target(ctl):
    table = LogisticBler()
    for snr in np.arange(-5.0, 25.0, 0.7):
        m = ctl.choose_mcs(float(snr))
        ok = [x for x in MCS_TABLE if table.bler(x.name, snr) <= 1e-2]
        if ok:
            assert m.spectral_efficiency == max(x.spectral_efficiency for x in ok)
            assert table.bler(m.name, snr) <= 1e-2
        else:
            assert m == MCS_TABLE[0]
    rates = [ctl.choose_mcs(s).spectral_efficiency for s in np.arange(-5, 25, 0.5)]
    assert all(np.diff(rates) >= 0) and rates[-1] > rates[0]


def test_each_hop_uses_its_own_report_then_prediction_then_robust(ctl):
    reports = {"leo0->uav0": LinkReport("leo0->uav0", time_s=1.0, snr_db=3.0)}
    plan = ctl.allocate(_task(), reports, {"route": ROUTE, "predicted_snr_db": {"uav0->user0": 18.0}})
    assert set(plan) == set(ROUTE)
    assert plan["leo0->uav0"].mcs == ctl.choose_mcs(3.0).name
    assert plan["uav0->user0"].mcs == ctl.choose_mcs(18.0).name
    assert plan["leo0->uav0"].mcs != plan["uav0->user0"].mcs
    assert len({a.compression for a in plan.values()}) == 1 and all(a.mode == "mode1" for a in plan.values())
    plan = ctl.allocate(_task(), {}, {"route": ROUTE})
    assert all(a.mcs == MCS_TABLE[0].name and not a.fallback for a in plan.values())


def test_budget_meets_deadline_and_floor_with_recomputed_delay(ctl):
    snr = {"leo0->uav0": 12.0, "uav0->user0": 15.0}
    state = {"route": ROUTE, "predicted_snr_db": snr, "symbol_rate_hz": 1e5, "propagation_delay_s": 0.01}
    task = _task(deadline_s=3.0, quality_min_db=25.0)
    plan = ctl.allocate(task, {}, state)
    bpp = plan[ROUTE[0]].compression
    # delay recomputed here from the allocation: air time per hop + Mode 1 compute + propagation
    air = sum(bpp * 256 * 256 / (1e5 * get_mcs(plan[h].mcs).spectral_efficiency) for h in ROUTE)
    delay = air + 0.1323 + 0.01
    assert delay == pytest.approx(ctl.last_decision["delay_s"], rel=1e-9)
    assert delay <= task.deadline_s + 1e-9
    assert RateQualityTable.coerce(QUALITY).psnr_at(bpp) >= task.quality_min_db - 1e-9
    assert ctl.last_decision["feasible"] and 0 < ctl.last_decision["scc"] <= 1
    # a looser deadline never lowers the chosen quality
    loose = ctl.allocate(_task(deadline_s=30.0, quality_min_db=25.0), {}, state)
    assert loose[ROUTE[0]].compression >= bpp


def test_infeasible_keeps_deadline(ctl):
    state = {"route": ROUTE, "predicted_snr_db": {h: 12.0 for h in ROUTE}, "symbol_rate_hz": 1e4}
    task = _task(deadline_s=2.0, quality_min_db=37.0)  # 37 dB needs ~1.7 bpp: far too slow at 10 kBd
    ctl.allocate(task, {}, state)
    d = ctl.last_decision
    assert not d["feasible"] and d["delay_s"] <= 2.0 + 1e-9 and d["scc"] == 0.0


def test_bad_inputs_name_the_problem(ctl):
    with pytest.raises(ValueError, match="route"):
        ctl.allocate(_task(), {}, {})
    with pytest.raises(ValueError, match="target_bler"):
        get_controller("link-adaptation", bler_table=LogisticBler(), quality_table=QUALITY, target_bler=2.0)
    with pytest.raises(ValueError, match="bpp"):
        RateQualityTable([0.1, 0.1, 0.2], [20, 21, 22])
    with pytest.raises(ValueError, match="unknown controller 'nope'"):
        get_controller("nope")


def test_with_the_shipped_measured_tables():
    """Integration with the calibration BLER table and the codecs' JPEG 2000 rate-quality table."""
    bler_mod = pytest.importorskip("sagin_hil.calibration.bler")
    try:
        table = bler_mod.BlerTable.load()
        ctl = get_controller("link-adaptation", bler_table=table)
    except FileNotFoundError as exc:
        pytest.skip(f"tables not installed: {exc}")
    chosen = [ctl.choose_mcs(float(s)) for s in np.arange(-5.0, 30.0, 1.0)]
    assert all(np.diff([m.spectral_efficiency for m in chosen]) >= 0)
    for s, m in zip(np.arange(-5.0, 30.0, 1.0), chosen):
        assert m == MCS_TABLE[0] or table.bler(m.name, float(s)) <= 1e-2
    plan = ctl.allocate(_task(deadline_s=8.0, quality_min_db=25.0), {},
                        {"route": ROUTE, "predicted_snr_db": {h: 15.0 for h in ROUTE}, "symbol_rate_hz": 1e6})
    d = ctl.last_decision
    assert d["feasible"] and d["psnr_db"] >= 25.0 and d["delay_s"] <= 8.0


# -- choosing between Mode 1 and deep JSCC ------------------------------------------------------------
JSCC = {"jscc-1/12": {"ratio": "1/12", "snr_db": [-4.0, 0.0, 10.0, 20.0], "psnr_db": [22.0, 24.0, 28.0, 30.0],
                      "compute_time_s": 0.03}}


def test_relay_snr_is_amplify_and_forward():
    from sagin_hil.controllers.link_adaptation import relay_snr_db

    # two 10 dB hops: 100 / (10 + 10 + 1); one hop is itself; a hop far better than the other costs ~nothing
    assert relay_snr_db([10.0, 10.0]) == pytest.approx(10 * math.log10(100 / 21))
    assert relay_snr_db([7.0]) == pytest.approx(7.0)
    assert relay_snr_db([5.0, 60.0]) == pytest.approx(5.0, abs=1e-3)


def test_jscc_is_chosen_where_the_digital_link_would_fail_and_not_otherwise():
    ctl = get_controller("link-adaptation", bler_table=LogisticBler(), quality_table=QUALITY, target_bler=1e-2,
                         mode_table=JSCC)
    state = {"route": ROUTE, "symbol_rate_hz": 1e6, "modes": ["mode1", "jscc-1/12"]}
    task = _task(deadline_s=5.0, quality_min_db=20.0)
    # -3 dB: below bpsk-1/2's waterfall (LogisticBler: ~1.5 dB), so Mode 1 would deliver nothing
    plan = ctl.allocate(task, {}, {**state, "predicted_snr_db": {h: -3.0 for h in ROUTE}})
    assert {a.mode for a in plan.values()} == {"jscc-1/12"}
    assert all(a.compression == pytest.approx(1 / 12) and a.mcs == MCS_TABLE[0].name for a in plan.values())
    d = ctl.last_decision
    assert not d["candidates"]["mode1"]["delivers"]
    s = 10**-0.3
    assert d["e2e_snr_db"] == pytest.approx(10 * math.log10(s * s / (s + s + 1)))
    assert d["psnr_db"] == pytest.approx(np.interp(d["e2e_snr_db"], [-4.0, 0.0], [22.0, 24.0]))
    assert d["delay_s"] == pytest.approx(0.03 + 2 * 256 * 256 * 3 / 12 / 1e6)
    # 20 dB: Mode 1 reaches more quality (the table tops out at 38 dB) within the deadline: it wins
    plan = ctl.allocate(task, {}, {**state, "predicted_snr_db": {h: 20.0 for h in ROUTE}})
    assert {a.mode for a in plan.values()} == {"mode1"}
    assert ctl.last_decision["psnr_db"] > ctl.last_decision["candidates"]["jscc-1/12"]["psnr_db"]
    # without JSCC allowed, the old behaviour: Mode 1 even when it would fail
    plan = ctl.allocate(task, {}, {"route": ROUTE, "predicted_snr_db": {h: -3.0 for h in ROUTE}})
    assert {a.mode for a in plan.values()} == {"mode1"}


def test_a_mode_the_controller_cannot_predict_is_named():
    ctl = get_controller("link-adaptation", bler_table=LogisticBler(), quality_table=QUALITY, mode_table={})
    with pytest.raises(ValueError, match=r"'jscc-1/6'.*sagin-hil train modes"):
        ctl.allocate(_task(), {}, {"route": ROUTE, "modes": ["mode1", "jscc-1/6"]})


def test_a_digital_semantic_mode_is_predicted_at_its_fixed_budget():
    """Mode 3_x: fixed bits per pixel and PSNR, carried at Mode 1's MCS per hop. A made-up VQ row better
    than JPEG 2000 at its rate (30 dB at 0.05 bpp; the table gives 22 dB) must win; its delay is Mode 1's
    formula at that budget."""
    vq = {"mode3_2": {"bpp": 0.05, "psnr_db": 30.0, "compute_time_s": 0.06}}
    ctl = get_controller("link-adaptation", bler_table=LogisticBler(), quality_table=QUALITY, target_bler=1e-2,
                         mode_table=vq)
    # a slow link (10 ksym/s) and a 1 s deadline hold JPEG 2000 to ~0.17 bpp (~26 dB)
    state = {"route": ROUTE, "symbol_rate_hz": 1e4, "modes": ["mode1", "mode3_2"],
             "predicted_snr_db": {h: 10.0 for h in ROUTE}}
    plan = ctl.allocate(_task(deadline_s=1.0, quality_min_db=25.0), {}, state)
    d = ctl.last_decision
    assert d["mode"] == "mode3_2" and {a.mode for a in plan.values()} == {"mode3_2"}
    assert all(a.compression == 0.05 and a.mcs == ctl.choose_mcs(10.0).name for a in plan.values())
    se = ctl.choose_mcs(10.0).spectral_efficiency
    assert d["delay_s"] == pytest.approx(0.06 + 2 * 0.05 * 256 * 256 / (1e4 * se))
    assert d["candidates"]["mode1"]["psnr_db"] < 30.0
    assert d["scc"] == max(c["scc"] for c in d["candidates"].values())
    # where the digital link fails, a digital semantic mode fails with it
    state["predicted_snr_db"] = {h: -3.0 for h in ROUTE}
    ctl.allocate(_task(), {}, state)
    assert not ctl.last_decision["candidates"]["mode3_2"]["delivers"]
