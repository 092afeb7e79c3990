"""Link adaptation: MCS from measured SNR against a BLER table, the mode and its budget from D_max and Q_min."""

import math

import numpy as np
import pytest

from sagin_hil.codecs.modes import RateQualityTable
from sagin_hil.controllers import ControllerOptionError, get_controller
from sagin_hil.controllers.link_adaptation import LinkAdaptation
from sagin_hil.datatypes import ControllerState, LinkReport, Route, Task
from sagin_hil.phy.mcs import MCS_TABLE, get_mcs
from sagin_hil.phy.theory import relay_snr_db


class LogisticBler:
    """A small BLER table built for the tests: each MCS has a waterfall 1.5 dB above the Shannon SNR of
    its spectral efficiency, 1 decade per 0.5 dB."""

    def required_snr_db(self, name, target=0.5):
        se = get_mcs(name).spectral_efficiency
        return 10 * math.log10(2**se - 1) + 1.5

    def bler(self, name, snr_db):
        return 1.0 / (1.0 + 10 ** ((snr_db - self.required_snr_db(name)) / 0.5))


QUALITY = {"bpp": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0], "psnr_db": [22.0, 24.5, 28.0, 31.0, 34.5, 38.0]}


def _table(**rows):
    """A mode table with the test's J2K curve (zero codec time: the tests set Mode 1's compute delay) and rows."""
    j2k = {**QUALITY, "encode_time_s": [0.0] * 6, "decode_time_s": [0.0] * 6}
    return {"image_size": 256, "modes": rows, "j2k_rate_quality": j2k}


def _ctl(**rows):
    return LinkAdaptation(bler_table=LogisticBler(), mode_table=_table(**rows), target_bler=1e-2,
                          compute_delay_s=0.1323)


@pytest.fixture
def ctl():
    return _ctl()


def _task(deadline_s=5.0, quality_min_db=25.0):
    return Task(task_id=1, image=np.zeros((256, 256, 3), np.uint8), source="leo0", destination="user0",
                deadline_s=deadline_s, quality_min_db=quality_min_db)


ROUTE = ["leo0->uav0", "uav0->user0"]
PATH = Route(("leo0", "uav0", "user0"))


def _state(task=None, snr=None, reports=None, symbol_rate_hz=1e6, prop_s=0.0, modes=("mode1",)):
    """One task on LEO -> UAV -> user; `snr` ({link: dB} or one dB for every hop) is the ephemeris prediction."""
    task = task or _task()
    pred = snr if isinstance(snr, dict) else ({h: snr for h in ROUTE} if snr is not None else {})
    return ControllerState(tasks=[task], routes={task.task_id: [PATH]}, modes=list(modes), predicted_snr_db=pred,
                           reports=reports or {}, bandwidth_hz={h: symbol_rate_hz * 1.25 for h in ROUTE},
                           propagation_delay_s={h: prop_s / 2 for h in ROUTE})


def _alloc(ctl, state):
    return ctl.allocate(state).allocations[state.tasks[0].task_id]


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
    a = _alloc(ctl, _state(snr={"leo0->uav0": 25.0, "uav0->user0": 18.0}, reports=reports))  # the report wins
    assert set(a.hops) == set(ROUTE) and a.mode == "mode1" and a.bits_per_pixel > 0
    assert a.hop("leo0->uav0").mcs == ctl.choose_mcs(3.0).name
    assert a.hop("uav0->user0").mcs == ctl.choose_mcs(18.0).name
    assert a.hop("leo0->uav0").mcs != a.hop("uav0->user0").mcs
    trail = ctl.last_decision
    assert trail["snr_source"] == {"leo0->uav0": "measured", "uav0->user0": "predicted"}
    a = _alloc(ctl, _state())
    assert all(h.mcs == MCS_TABLE[0].name for h in a.hops.values()) and not a.fallback
    assert ctl.last_decision["snr_source"] == {h: "unknown" for h in ROUTE}


def test_budget_meets_deadline_and_floor_with_recomputed_delay(ctl):
    snr = {"leo0->uav0": 12.0, "uav0->user0": 15.0}
    task = _task(deadline_s=3.0, quality_min_db=25.0)
    a = _alloc(ctl, _state(task, snr, symbol_rate_hz=1e5, prop_s=0.01))
    bpp = a.bits_per_pixel
    # delay recomputed here from the allocation: air time per hop + Mode 1 compute + propagation
    air = sum(bpp * 256 * 256 / (1e5 * get_mcs(a.hop(h).mcs).spectral_efficiency) for h in ROUTE)
    delay = air + 0.1323 + 0.01
    assert delay == pytest.approx(a.predicted["delay_s"], rel=1e-9)
    assert delay <= task.deadline_s + 1e-9
    assert RateQualityTable.coerce(QUALITY).psnr_at(bpp) >= task.quality_min_db - 1e-9
    assert ctl.last_decision["feasible"] and 0 < a.predicted["scc"] <= 1
    # a looser deadline never lowers the chosen quality
    loose = _alloc(ctl, _state(_task(deadline_s=30.0, quality_min_db=25.0), snr, symbol_rate_hz=1e5, prop_s=0.01))
    assert loose.bits_per_pixel >= bpp


def test_infeasible_keeps_deadline(ctl):
    task = _task(deadline_s=2.0, quality_min_db=37.0)  # 37 dB needs ~1.7 bpp: far too slow at 10 kBd
    a = _alloc(ctl, _state(task, 12.0, symbol_rate_hz=1e4))
    d = ctl.last_decision
    assert not d["feasible"] and a.predicted["delay_s"] <= 2.0 + 1e-9 and a.predicted["scc"] == 0.0
    assert "deadline took precedence" in d["why"]


def test_bad_inputs_name_the_problem(ctl):
    with pytest.raises(ValueError, match="no candidate route"):
        ControllerState(tasks=[_task()], routes={})
    with pytest.raises(ValueError, match="target_bler"):
        LinkAdaptation(bler_table=LogisticBler(), quality_table=QUALITY, target_bler=2.0)
    with pytest.raises(ControllerOptionError, match=r"option 'target_bler' = 2.0: Input should be less than 1"):
        get_controller("link-adaptation", target_bler=2.0)
    with pytest.raises(ControllerOptionError, match=r"unknown option 'target_blr'; did you mean 'target_bler'\?"):
        get_controller("link-adaptation", target_blr=0.1)
    with pytest.raises(ValueError, match="bpp"):
        RateQualityTable([0.1, 0.1, 0.2], [20, 21, 22])
    with pytest.raises(ValueError, match="unknown controller 'nope'"):
        get_controller("nope")


def test_with_the_shipped_measured_tables():
    """Integration with the calibration BLER table and the codecs' JPEG 2000 rate-quality table."""
    bler_mod = pytest.importorskip("sagin_hil.calibration.bler")
    try:
        table = bler_mod.BlerTable.load()
        ctl = LinkAdaptation(bler_table=table, target_bler=1e-2)
    except FileNotFoundError as exc:
        pytest.skip(f"tables not installed: {exc}")
    chosen = [ctl.choose_mcs(float(s)) for s in np.arange(-5.0, 30.0, 1.0)]
    assert all(np.diff([m.spectral_efficiency for m in chosen]) >= 0)
    for s, m in zip(np.arange(-5.0, 30.0, 1.0), chosen):
        assert m == MCS_TABLE[0] or table.bler(m.name, float(s)) <= 1e-2
    a = _alloc(ctl, _state(_task(deadline_s=8.0, quality_min_db=25.0), 15.0))
    assert ctl.last_decision["feasible"] and a.predicted["psnr_db"] >= 25.0 and a.predicted["delay_s"] <= 8.0


# -- choosing between Mode 1 and deep JSCC ------------------------------------------------------------
JSCC = {"jscc-1/12": {"ratio": "1/12", "snr_db": [-4.0, 0.0, 10.0, 20.0], "psnr_db": [22.0, 24.0, 28.0, 30.0],
                      "compute_time_s": 0.03}}


def test_relay_snr_is_amplify_and_forward():
    # two 10 dB hops: 100 / (10 + 10 + 1); one hop is itself; a hop far better than the other costs ~nothing
    assert relay_snr_db([10.0, 10.0]) == pytest.approx(10 * math.log10(100 / 21))
    assert relay_snr_db([7.0]) == pytest.approx(7.0)
    assert relay_snr_db([5.0, 60.0]) == pytest.approx(5.0, abs=1e-3)


def test_jscc_is_chosen_where_the_digital_link_would_fail_and_not_otherwise():
    ctl = _ctl(**JSCC)
    modes = ("mode1", "jscc-1/12")
    task = _task(deadline_s=5.0, quality_min_db=20.0)
    # -3 dB: below bpsk-1/2's waterfall (LogisticBler: ~1.5 dB), so Mode 1 would deliver nothing
    a = _alloc(ctl, _state(task, -3.0, modes=modes))
    assert a.mode == "jscc-1/12" and a.bandwidth_ratio == pytest.approx(1 / 12) and a.bits_per_pixel == 0
    assert all(h.mcs == "analog" for h in a.hops.values())
    d = ctl.last_decision
    assert not d["candidates"]["mode1"]["delivers"] and d["choice"] == "jscc-1/12"
    s = 10**-0.3
    e2e = d["candidates"]["jscc-1/12"]["e2e_snr_db"]
    assert e2e == pytest.approx(10 * math.log10(s * s / (s + s + 1)), abs=1e-3)
    assert a.predicted["psnr_db"] == pytest.approx(np.interp(e2e, [-4.0, 0.0], [22.0, 24.0]), abs=1e-3)
    assert a.predicted["delay_s"] == pytest.approx(0.03 + 2 * 256 * 256 * 3 / 12 / 1e6)
    # 20 dB: Mode 1 reaches more quality (the table tops out at 38 dB) within the deadline: it wins
    a = _alloc(ctl, _state(task, 20.0, modes=modes))
    assert a.mode == "mode1"
    assert a.predicted["psnr_db"] > ctl.last_decision["candidates"]["jscc-1/12"]["psnr_db"]
    # without JSCC allowed: Mode 1 even when it would fail, and the trail says so
    a = _alloc(ctl, _state(task, -3.0))
    assert a.mode == "mode1" and "no digital MCS meets the BLER target" in ctl.last_decision["why"]


def test_a_mode_the_controller_cannot_predict_is_named():
    ctl = _ctl()  # a table without a jscc-1/6 row: that mode cannot be predicted, so it is not a candidate
    a = _alloc(ctl, _state(snr=10.0, modes=("mode1", "jscc-1/6")))
    assert a.mode == "mode1" and set(ctl.last_decision["candidates"]) == {"mode1"}
    with pytest.raises(ValueError, match=r"none of the modes \['jscc-1/6'\].*sagin-hil train modes"):
        ctl.allocate(_state(snr=10.0, modes=("jscc-1/6",)))


def test_a_digital_semantic_mode_is_predicted_at_its_fixed_budget():
    """Mode 3_x: fixed bits per pixel and PSNR, carried at Mode 1's MCS per hop. A made-up VQ row better
    than JPEG 2000 at its rate (30 dB at 0.05 bpp; the table gives 22 dB) must win; its delay is Mode 1's
    formula at that budget."""
    ctl = _ctl(**{"3_2": {"bits": int(0.05 * 256 * 256), "psnr_db": 30.0, "compute_time_s": 0.06}})
    # a slow link (10 ksym/s) and a 1 s deadline hold JPEG 2000 to ~0.17 bpp (~26 dB)
    modes = ("mode1", "mode3_2")
    a = _alloc(ctl, _state(_task(deadline_s=1.0, quality_min_db=25.0), 10.0, symbol_rate_hz=1e4, modes=modes))
    d = ctl.last_decision
    assert a.mode == "mode3_2" and a.bits_per_pixel == pytest.approx(0.05, abs=1e-4)
    assert all(h.mcs == ctl.choose_mcs(10.0).name for h in a.hops.values())
    se = ctl.choose_mcs(10.0).spectral_efficiency
    assert a.predicted["delay_s"] == pytest.approx(0.06 + 2 * 0.05 * 256 * 256 / (1e4 * se), rel=1e-3)
    assert d["candidates"]["mode1"]["psnr_db"] < 30.0
    assert a.predicted["scc"] == pytest.approx(max(c["scc"] for c in d["candidates"].values()), abs=1e-4)
    # where the digital link fails, a digital semantic mode fails with it
    _alloc(ctl, _state(snr=-3.0, modes=modes))
    assert not ctl.last_decision["candidates"]["mode3_2"]["delivers"]


def test_the_best_candidate_route_wins():
    """Two candidate routes: the one over the better UAV link gets the task, and the trail lists both."""
    ctl = _ctl()
    task = _task(deadline_s=3.0, quality_min_db=25.0)
    other = Route(("leo1", "uav1", "user0"))
    links = ROUTE + other.links
    state = ControllerState(tasks=[task], routes={1: [PATH, other]},
                            predicted_snr_db={"leo0->uav0": 15.0, "uav0->user0": 1.0, "leo1->uav1": 15.0,
                                              "uav1->user0": 15.0},
                            bandwidth_hz={h: 1.25e5 for h in links})
    a = _alloc(ctl, state)
    assert a.route == other and ctl.last_decision["routes_considered"] == [str(PATH), str(other)]
