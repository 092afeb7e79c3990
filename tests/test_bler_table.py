"""BLER tables: the shipped AWGN table against theory, interpolation, persistence, a small live measurement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sagin_hil.calibration.bler import BlerTable, measure_bler_table
from sagin_hil.phy.mcs import MCS_TABLE


@pytest.fixture(scope="module")
def table() -> BlerTable:
    return BlerTable.load()


def test_shipped_table_covers_every_mcs(table):
    assert set(table.mcs_names) == {m.name for m in MCS_TABLE}
    assert table.meta["blocks_per_point"] >= 1000
    for name in table.mcs_names:
        curve = np.asarray(table.curves[name])
        assert curve[0] == 1.0 and curve[-1] == 0.0  # the grid spans the whole waterfall


def test_required_snr_respects_shannon_and_is_close_to_it(table):
    # Shannon: Es/N0 >= 2^SE - 1 for SE information bits per symbol. A K ~ 2000 LDPC code with 10
    # min-sum iterations, BICM with Gray mapping and max-log demapping sits 1-4 dB above it at BLER 0.1.
    for mcs in MCS_TABLE:
        limit_db = 10 * math.log10(2**mcs.spectral_efficiency - 1)
        gap = table.required_snr_db(mcs.name, 0.1) - limit_db
        assert 0.5 < gap < 4.0, (mcs.name, gap)


def test_required_snr_grows_with_spectral_efficiency_per_modulation(table):
    for mod in ("qpsk", "16qam", "64qam"):
        names = [m.name for m in MCS_TABLE if m.modulation == mod]
        req = [table.required_snr_db(n) for n in names]
        assert req == sorted(req) and len(set(req)) == len(req)
    # BPSK-1/2 needs 3 dB less Es/N0 than QPSK-1/2 (same Eb/N0, half the bits per symbol)
    diff = table.required_snr_db("qpsk-1/2") - table.required_snr_db("bpsk-1/2")
    assert diff == pytest.approx(3.01, abs=0.3)


def test_interpolation_in_log_domain():
    t = BlerTable([0.0, 1.0, 2.0], {"qpsk-1/2": [1.0, 1e-1, 1e-3]})
    assert t.bler("qpsk-1/2", 1.0) == pytest.approx(0.1)
    assert t.bler("qpsk-1/2", 1.5) == pytest.approx(1e-2)  # geometric mean
    assert t.bler("qpsk-1/2", -5.0) == 1.0 and t.bler("qpsk-1/2", 9.0) == pytest.approx(1e-3)
    assert np.allclose(t.bler("qpsk-1/2", np.array([0.5, 1.5])), [10**-0.5, 1e-2])
    assert t.required_snr_db("qpsk-1/2", 0.1) == pytest.approx(1.0)
    assert t.required_snr_db("qpsk-1/2", 1e-2) == pytest.approx(1.5)
    assert t.required_snr_db("qpsk-1/2", 1e-4) == math.inf
    zero = BlerTable([0.0, 1.0], {"x": [0.5, 0.0]})
    assert zero.bler("x", 1.0) == 0.0


def test_save_load_round_trip(tmp_path, table):
    path = tmp_path / "t.json"
    table.save(path)
    again = BlerTable.load(path)
    assert again.snr_db == pytest.approx(table.snr_db) and again.curves == table.curves
    assert again.required_snr_db("16qam-1/2") == pytest.approx(table.required_snr_db("16qam-1/2"))


def test_live_measurement_brackets_the_waterfall():
    t = measure_bler_table(["qpsk-1/2", "16qam-3/4"], [-2.0, 4.0, 14.0], n_blocks=20, code_k=512)
    assert t.curves["qpsk-1/2"] == [1.0, 0.0, 0.0]  # the last point is skipped: BLER falls with SNR
    assert t.curves["16qam-3/4"][0] == 1.0 and t.curves["16qam-3/4"][2] == 0.0
    assert t.meta["code_blocks"]["16qam-3/4"]["n"] % 4 == 0


def test_bad_inputs_are_rejected(table, tmp_path):
    with pytest.raises(ValueError, match="not in this BLER table"):
        table.bler("qpsk-7/8", 3.0)
    with pytest.raises(ValueError, match="target_bler"):
        table.required_snr_db("qpsk-1/2", 1.5)
    with pytest.raises(ValueError, match="not found"):
        BlerTable.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="ascending"):
        BlerTable([1.0, 0.0], {"a": [1.0, 0.5]})
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        BlerTable([0.0, 1.0], {"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="unknown MCS"):
        measure_bler_table(["qpsk-9/10"], [0.0, 1.0], n_blocks=1)
