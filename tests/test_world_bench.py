"""`sagin-hil bench world`: the abstraction's errors on the same plans as the sample level, in the common schema."""

import numpy as np
import pytest

from sagin_hil.benchmarks import validate_results


def test_bench_world_schema_and_measured_errors():
    from sagin_hil.flowgraphs.world_bench import bench_world

    res = validate_results(bench_world(quick=True))
    (entry,) = res["benchmarks"]
    ours = entry["ours"]
    assert entry["name"] == "world" and ours["tasks"] == 6
    for key in ("steps_per_s", "psnr_err_db_median", "psnr_err_db_p90", "delay_err_rel_median", "delay_err_rel_p90"):
        assert np.isfinite(ours[key]) and ours[key] >= 0, key
    assert ours["psnr_err_db_p90"] >= ours["psnr_err_db_median"] and ours["delay_err_rel_p90"] >= ours["delay_err_rel_median"]
    # the delay model is the sample level's (air time, propagation, measured compute times): within 10 %
    assert ours["delay_err_rel_median"] < 0.10
    # quality from each image's own profile: a delivered task's PSNR is its profile's (the 1 dB bar);
    # between grid points the log-bpp interpolation stays within a fraction of a dB
    assert ours["psnr_err_db_median"] <= 1.0
    assert ours["psnr_interp_err_db_median"] <= 0.5
    peer = entry["peers"]["sample-level runner"]["steps_per_s"]
    assert entry["ratio"]["sample-level runner"] == pytest.approx(ours["steps_per_s"] / peer)
