"""`sagin-hil calibrate bler` measures a table the link-adaptation controller can load by path."""

from typer.testing import CliRunner

from sagin_hil.calibration.bler import BlerTable
from sagin_hil.cli import app
from sagin_hil.controllers import get_controller


def test_measured_table_loads_into_the_controller(tmp_path):
    out = tmp_path / "bler.json"
    res = CliRunner().invoke(app, ["calibrate", "bler", "--mcs", "qpsk-1/2", "--snr-db", "-2:4:1",
                                   "--blocks", "40", "--code-k", "512", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = BlerTable.load(out)
    assert table.mcs_names == ["qpsk-1/2"]
    # Rate-1/2 QPSK crosses BLER 0.1 a little above Es/N0 = 0 dB (capacity limit -0.8 dB at k = 512).
    assert -1.0 < table.required_snr_db("qpsk-1/2", 0.1) < 3.0
    assert table.bler("qpsk-1/2", -2.0) > table.bler("qpsk-1/2", 4.0)
    ctl = get_controller("link-adaptation", bler_table=str(out))
    assert ctl.choose_mcs(10.0).name == "qpsk-1/2"  # only what was measured is ever chosen


def test_bad_grid_is_named():
    res = CliRunner().invoke(app, ["calibrate", "bler", "--snr-db", "5:1:1"])
    assert res.exit_code != 0 and "5:1:1" in res.output and "start:stop:step" in res.output
