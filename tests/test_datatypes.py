"""The shared types check their values and round-trip through their wire form."""

import json
import math

import numpy as np
import pytest

from sagin_hil.datatypes import (
    Allocation, ControllerState, HopAllocation, LinkReport, Plan, Route, SampleBlock, Task, from_dict, parse_link_id,
    to_dict,
)


def _task(**kw):
    args = dict(task_id=1, image=np.zeros((8, 8, 3), np.uint8), source="leo0", destination="user0",
                deadline_s=5.0, quality_min_db=25.0)
    args.update(kw)
    return Task(**args)


def test_round_trip_through_json():
    objs = [
        _task(name="astronaut"),
        LinkReport("leo0->uav0", time_s=12.5, snr_db=9.3, evm_rms=0.12, cfo_hz=-410.0, ber=1e-3, bler=0.02,
                   delay_s=3.1e-3, n_blocks=40),
    ]
    for obj in objs:
        back = from_dict(json.loads(json.dumps(to_dict(obj))))
        assert type(back) is type(obj)
        for k, v in to_dict(obj).items():
            got = to_dict(back)[k]
            assert got == v or (isinstance(v, float) and math.isnan(v) and math.isnan(got))
    assert from_dict(to_dict(objs[0])).image is None  # images never travel in the wire form


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(deadline_s=-1.0), "deadline_s"),
        (dict(quality_min_db=float("nan")), "quality_min_db"),
        (dict(weight_quality=0.7, weight_delay=0.7), "sum to 1"),
        (dict(image=np.zeros((4, 4), np.float32)), "uint8"),
    ],
)
def test_task_rejects_bad_values(kwargs, words):
    with pytest.raises(ValueError, match=words):
        _task(**kwargs)


def test_link_report_rejects_bad_values():
    with pytest.raises(ValueError, match="link_id"):
        LinkReport("", 0.0, 3.0)
    with pytest.raises(ValueError, match="bler"):
        LinkReport("a->b", 0.0, 3.0, bler=1.5)
    with pytest.raises(ValueError, match="snr_db"):
        LinkReport("a->b", 0.0, float("inf"))
    with pytest.raises(ValueError, match="LinkReport.snr_db = 'x' must be a number"):
        LinkReport("a->b", 0.0, "x")


def test_from_dict_names_unknown_type_and_field():
    with pytest.raises(ValueError, match="unknown type 'Pickle'"):
        from_dict({"type": "Pickle"})
    with pytest.raises(ValueError, match="no field"):
        from_dict({"type": "LinkReport", "link_id": "a->b", "time_s": 0, "snr_db": 1, "colour": "red"})
    with pytest.raises(ValueError, match="LinkReport"):
        from_dict({"type": "LinkReport", "link_id": "a->b"})


def test_sample_block_checks_dtype_and_times():
    x = np.ones(1000, np.complex64)
    blk = SampleBlock(x, sample_rate_hz=1e6, carrier_hz=2e9, start_time_s=1.0)
    assert blk.duration_s == pytest.approx(1e-3)
    assert blk.end_time_s == pytest.approx(1.001)
    nxt = blk.with_samples(np.zeros(10, np.complex128), start_time_s=blk.end_time_s)
    assert nxt.samples.dtype == np.complex64 and nxt.carrier_hz == 2e9
    with pytest.raises(ValueError, match="complex64"):
        SampleBlock(x.astype(np.complex128), 1e6)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        SampleBlock(x, 0.0)


def _state():
    task = _task(task_id=4)
    route = Route(("leo1", "leo0", "uav0", "user0"))
    return ControllerState(
        time_s=30.0, tasks=[task], routes={4: [route]}, modes=["mode1", "jscc-1/12"],
        positions_m={"uav0": (0, 0, 50), "user0": (100, 0, 0)}, visible=[("leo0", "uav0")], isl=[("leo1", "leo0")],
        reports={"leo0->uav0": LinkReport("leo0->uav0", 29.0, 12.5)}, predicted_snr_db={"uav0->user0": 18.0},
        propagation_delay_s={"leo0->uav0": 3e-3}, bandwidth_hz={"leo0->uav0": 10e6, "uav0->user0": 10e6},
        power_w={"leo0": 1.0, "uav0": 0.2}, user_kind={"user0": "semantic"},
    )


def test_route_names_its_pairings_and_isl_hops():
    r = Route(("leo1", "leo0", "uav0", "user0"))
    assert (r.source, r.leo, r.uav, r.user) == ("leo1", "leo0", "uav0", "user0")
    assert r.isl_hops == ["leo1->leo0"] and r.links == ["leo1->leo0", "leo0->uav0", "uav0->user0"]
    assert str(r) == "leo1->leo0->uav0->user0"
    with pytest.raises(ValueError, match="LEO .* -> UAV -> user"):
        Route(("leo0", "uav0"))
    with pytest.raises(ValueError, match="'tx->rx'"):
        parse_link_id("leo0-uav0")


def test_controller_state_and_plan_round_trip_through_json():
    state = _state()
    back = ControllerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert json.dumps(back.to_dict()) == json.dumps(state.to_dict())  # NaN fields compare as text
    assert back.snr_db("leo0->uav0") == 12.5 and back.snr_db("uav0->user0") == 18.0 and back.snr_db("x->y") is None
    assert back.symbol_rate_hz("leo0->uav0") == pytest.approx(8e6)  # 10 MHz / (1 + 0.25)
    assert back.tasks[0].shape == (8, 8, 3) and back.tasks[0].n_pixels == 64
    route = state.routes[4][0]
    plan = Plan({4: Allocation(4, route, mode="mode1", bits_per_pixel=0.7,
                               hops={"leo0->uav0": HopAllocation("16qam-3/4", power_w=0.5, bandwidth_hz=5e6)},
                               predicted={"psnr_db": 31.0})},
                waypoints_m={"uav0": (10.0, 0.0, 50.0)}, trail={4: {"choice": "mode1", "why": "test"}})
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.to_dict() == plan.to_dict()
    a = again.allocations[4]
    assert a.hop("leo0->uav0").power_w == 0.5 and a.hop("uav0->user0").mcs == "qpsk-1/2"  # default for a left-out hop


def test_allocation_and_state_reject_what_does_not_fit():
    route = Route(("leo0", "uav0", "user0"))
    with pytest.raises(ValueError, match="not on its route"):
        Allocation(1, route, hops={"uav1->user0": HopAllocation()})
    with pytest.raises(ValueError, match="bits_per_pixel"):
        Allocation(1, route, bits_per_pixel=-1.0)
    with pytest.raises(ValueError, match="power_w"):
        HopAllocation(power_w=-2.0)
    with pytest.raises(ValueError, match=r"task\(s\) \[4\] have no candidate route"):
        ControllerState(tasks=[_task(task_id=4)], routes={})
    with pytest.raises(ValueError, match="no field"):
        ControllerState.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="waypoints_m"):
        Plan(waypoints_m={"uav0": (1.0, float("nan"), 3.0)})
