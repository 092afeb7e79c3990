"""BLER tables measured the way the link runs: its own packets through the emulator and its own receiver."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.calibration.bler import BlerTable
from sagin_hil.calibration.link_bler import measure_link_bler
from sagin_hil.cli import app


def test_sample_level_waterfall_sits_near_the_symbol_level_one():
    table = measure_link_bler(["qpsk-1/2"], [-1.0, 0.5, 1.0, 1.5, 2.0, 3.0], packets=10, packet_bytes=512, seed=2)
    curve = table.curves["qpsk-1/2"]
    assert curve[0] == 1.0 and curve[-1] == 0.0  # far below and above the waterfall
    assert all(b >= a - 0.25 for a, b in zip(curve[1:], curve))  # falls with Es/N0 (within the counting noise)
    # the same code family at the link's k = 1024 with real synchronisation: within a dB of ideal symbols
    assert table.required_snr_db("qpsk-1/2", 0.1) == pytest.approx(BlerTable.load().required_snr_db("qpsk-1/2", 0.1),
                                                                   abs=1.0)
    meta = table.meta
    assert meta["code_k"] == 1024 and meta["channel"] == "AWGN" and meta["seed"] == 2
    assert meta["link"]["sps"] == 4 and meta["blocks"]["qpsk-1/2"][0] >= 4 and "date_utc" in meta


def test_cli_sample_level_table_with_plot(tmp_path):
    res = CliRunner().invoke(app, ["calibrate", "bler", "--sample-level", "--mcs", "qpsk-1/2", "--snr-db", "0:2:1",
                                   "--packets", "2", "--packet-bytes", "256", "--out", str(tmp_path / "t.json"),
                                   "--plot", str(tmp_path / "t.png")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["meta"]["source"].startswith("sample level") and (tmp_path / "t.png").stat().st_size > 1000
    assert BlerTable.load(tmp_path / "t.json").mcs_names == ["qpsk-1/2"]
    bad = CliRunner().invoke(app, ["calibrate", "bler", "--profile", str(tmp_path / "p.toml")])
    assert bad.exit_code == 2 and "--sample-level" in bad.output
    with pytest.raises(ValueError, match="ascending"):
        measure_link_bler(["qpsk-1/2"], [3.0, 1.0])
    assert np.isfinite(BlerTable.load(tmp_path / "t.json").required_snr_db("qpsk-1/2", 0.5))
