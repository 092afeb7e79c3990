"""The shared types check their values and round-trip through their wire form."""

import json
import math

import numpy as np
import pytest

from sagin_hil.datatypes import Allocation, LinkReport, SampleBlock, Task, from_dict, to_dict


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
        Allocation(mode="mode1", mcs="16qam-3/4", modulation="16qam", code_rate=0.75,
                   uav_positions_m={"uav0": (1.0, 2.0, 50.0)}, pairings={"user0": "uav0"}),
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
