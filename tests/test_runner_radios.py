"""The main job through radios: unmodified pyadi-iio driving emulated Plutos carries the images.

These run the real pyadi-iio + libiio stack against the project's iiod server: per-hop emulated Plutos
with the scenario's channel (radio = pluto-emu), one Pluto with TX cabled to RX, and a two-radio bench.
"""

import json

import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app
from sagin_hil.hil.ports import free_port

pytest.importorskip("adi", reason="pyadi-iio is not installed")

SMALL = 'name = "{name}"\nseed = 2\n[images]\ncount = 1\nsize_px = 64\n[tasks]\nquality_min_db = [20.0, 20.0]\n'
BENCH_PHY = "[phy]\nsymbol_rate_hz = 1e6\n"  # 4 MS/s: what a Pluto sustains over USB


def _run(tmp_path, text: str, *args: str) -> dict:
    fg = tmp_path / "fg.toml"
    fg.write_text(text)
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "--json", str(tmp_path / "s.json"), *args])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "s.json").read_text())


def _delivered(summary: dict) -> None:
    (task,) = summary["tasks"]
    assert task["met_quality"] and task["psnr_db"] > 25.0, task
    assert all(lk["bler"] < 0.5 for lk in summary["links"]), summary["links"]


def test_emulated_plutos_carry_the_pass(tmp_path):
    summary = _run(tmp_path, SMALL.format(name="emu"), "--radio", "pluto-emu")
    _delivered(summary)
    assert summary["radio"]["kind"] == "pluto-emu"
    first = summary["links"][0]
    assert first["link"].startswith("leo") and 10.0 < first["mean_snr_db"] < 30.0  # the scenario's Es/N0


def test_one_pluto_cabled_tx_to_rx(tmp_path):
    from sagin_hil.hil.iiod import start_pluto_emulator

    with start_pluto_emulator(attenuation_db=40.0) as srv:
        text = SMALL.format(name="cable") + BENCH_PHY + f'[radio]\nkind = "pluto"\nuri = "{srv.uri}"\ncarrier_hz = 2.4e9\n'
        _delivered(_run(tmp_path, text))


def test_two_radio_bench(tmp_path):
    from sagin_hil.hil.iiod import start_pluto_pair

    a, b = start_pluto_pair(xo_ppm=(2.0, -1.0))
    try:
        text = (SMALL.format(name="pair") + BENCH_PHY + f'[radio]\nkind = "pluto"\nuri = "{a.uri}"\ncarrier_hz = 2.4e9\n'
                f'[radio.receiver]\nuri = "{b.uri}"\n')
        summary = _run(tmp_path, text)
    finally:
        a.close()
        b.close()
    _delivered(summary)


def test_a_radio_vanishing_mid_run_keeps_the_finished_tasks(tmp_path, monkeypatch):
    from sagin_hil.flowgraphs import runner
    from sagin_hil.hil.iiod import start_pluto_emulator

    srv = start_pluto_emulator()
    carry = runner._Experiment.carry

    def carry_then_unplug(self, *args):  # the Pluto disappears once the first image is through
        record = carry(self, *args)
        srv.close()
        return record

    monkeypatch.setattr(runner._Experiment, "carry", carry_then_unplug)
    fg = tmp_path / "fg.toml"
    fg.write_text(SMALL.format(name="unplug").replace("count = 1", "count = 3") + BENCH_PHY
                  + f'[radio]\nkind = "pluto"\nuri = "{srv.uri}"\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs"), "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 1
    assert "run aborted" in res.output and "stopped at task 1 of 3" in res.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert len(summary["tasks"]) == 1 and summary["tasks"][0]["psnr_db"] > 25.0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "index.html").exists()


def test_an_unreachable_radio_is_named(tmp_path):
    fg = tmp_path / "fg.toml"
    fg.write_text(SMALL.format(name="nothing") + BENCH_PHY + '[radio]\nkind = "pluto"\nuri = "ip:127.0.0.1:9"\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 1
    assert "127.0.0.1:9" in res.output and "stopped at task 0 of 1" in res.output


def test_a_zmq_radio_cabled_to_itself(tmp_path):
    """kind = "zmq": a gr-zeromq style radio whose RX subscribes to its own TX (a software cable)."""
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    text = (SMALL.format(name="zmq") + '[phy]\nsymbol_rate_hz = 250e3\n'
            + f'[radio]\nkind = "zmq"\nuri = "{uri}"\ntx_uri = "{uri}"\nsample_rate_hz = 1e6\n')
    summary = _run(tmp_path, text)
    _delivered(summary)
    assert summary["radio"]["kind"] == "zmq" and summary["radio"]["tx_uri"] == uri
