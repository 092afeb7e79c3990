"""`sagin-hil bench rx` on two of its entries: schema, decoding, the stage split (no timing asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from sagin_hil.benchmarks import validate_results
from sagin_hil.phy import rx_bench


@pytest.mark.parametrize("mcs", ["16qam-3/4", "analog"])
def test_entry_decodes_and_splits_the_time_by_stage(mcs):
    entry = rx_bench._entry(mcs, 1, np.random.default_rng(0))
    validate_results({"benchmarks": [entry]})
    ours = entry["ours"]
    assert ours["decoded"] and ours["msps"] > 0 and ours["tx_msps"] > 0
    assert set(entry["ratio"]) == set(rx_bench.RATES_MSPS)
    assert entry["ratio"]["radio_2msps"] == pytest.approx(ours["msps"] / 2.0)
    assert ours["realtime_factor_61.44msps"] == pytest.approx(ours["msps"] / 61.44)
    rx, tx = ours["rx_stage_share"], ours["tx_stage_share"]
    assert sum(rx.values()) == pytest.approx(1.0, abs=0.01) and sum(tx.values()) == pytest.approx(1.0, abs=0.01)
    expected = {"detection", "synchronisation", "equalisation", "header"}
    expected |= set() if mcs == "analog" else {"demapping", "ldpc", "crc_reassembly"}
    assert expected <= set(rx) and "pulse_shaping" in tx
