"""`sagin-hil run --record DIR` writes every hop's received samples as SigMF; radio kind "replay" feeds them back
to the receivers, which decode the same images; `calibrate channel` fits the recordings."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec")
    fg = tmp / "small.toml"
    fg.write_text('name = "small"\nseed = 5\n[images]\ncount = 2\nsize_px = 64\n[phy]\npacket_bytes = 256\n'
                  '[tasks]\ndeadline_s = [2.0, 11.0]\nquality_min_db = [20.0, 22.0]\n')
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp / "runs"), "--json", str(tmp / "a.json"),
                                   "--record", str(tmp / "iq"), "-q"])
    assert res.exit_code == 0, res.output
    return tmp, fg


def test_each_hop_is_a_valid_sigmf_recording(recorded):
    from sigmf import sigmffile

    tmp, _ = recorded
    metas = sorted((tmp / "iq").glob("*.sigmf-meta"))
    assert {m.name for m in metas} >= {"leo0-uav0.sigmf-meta"}
    for m in metas:
        handle = sigmffile.fromfile(str(m))  # checks the sha512 against the data file
        handle.validate()
        glob = json.loads(m.read_text())["global"]
        assert glob["sagin:link"] == m.name.split(".")[0].replace("-", "->")
        assert glob["core:sample_rate"] > 0 and len(glob["core:sha512"]) == 128
        caps, anns = handle.get_captures(), handle.get_annotations()
        assert caps and all(c["core:frequency"] > 1e9 for c in caps)
        bursts = [a for a in anns if a.get("core:label") == "burst"]
        assert bursts and all("sagin:mcs" in a and a["sagin:tx_sample"] >= 0 for a in bursts)


def test_a_recorded_run_replays_to_the_same_images(recorded):
    tmp, fg = recorded
    res = CliRunner().invoke(app, ["run", str(fg), "--out", str(tmp / "runs2"), "--json", str(tmp / "b.json"),
                                   "--radio", "replay", "--set", f"radio.uri={tmp / 'iq'}", "-q"])
    assert res.exit_code == 0, res.output
    a, b = (json.loads((tmp / f).read_text()) for f in ("a.json", "b.json"))
    assert [t["psnr_db"] for t in a["tasks"]] == [t["psnr_db"] for t in b["tasks"]]
    assert [t["bits"] for t in a["tasks"]] == [t["bits"] for t in b["tasks"]]
    assert [lk["mean_snr_db"] for lk in a["links"]] == pytest.approx([lk["mean_snr_db"] for lk in b["links"]])


def test_replay_refuses_another_run(recorded, tmp_path):
    tmp, _ = recorded
    other = tmp_path / "other.toml"
    other.write_text('name = "other"\nseed = 5\n[images]\ncount = 2\nsize_px = 80\n[phy]\npacket_bytes = 256\n')
    res = CliRunner().invoke(app, ["run", str(other), "--out", str(tmp_path), "--radio", "replay",
                                   "--set", f"radio.uri={tmp / 'iq'}", "-q"])
    assert res.exit_code != 0
    assert "of the leo0->uav0 recording has" in res.output  # the run stops there, keeping what it finished
    missing = CliRunner().invoke(app, ["run", str(other), "--out", str(tmp_path), "--radio", "replay",
                                       "--set", f"radio.uri={tmp_path / 'nothing'}", "-q"])
    assert missing.exit_code != 0 and "--record" in missing.output


def test_a_runs_recording_calibrates(recorded):
    from sagin_hil.calibration.channel_fit import fit_channel, measure_bursts, read_recording

    tmp, _ = recorded
    rec = read_recording(tmp / "iq" / "leo0-uav0.sigmf-meta")
    bursts = measure_bursts(rec)
    assert bursts.arrival.size >= 10
    fit = fit_channel(rec, bursts, n_boot=20)
    summary = json.loads((tmp / "a.json").read_text())
    measured = next(lk["mean_snr_db"] for lk in summary["links"] if lk["link"] == "leo0->uav0")
    # the receivers' own Es/N0 and the calibration's agree on the same samples
    assert fit.value("snr_db") == pytest.approx(measured, abs=1.0)
    # the hops' oscillators are 0.5 ppm apart (phy.cfo_ppm): the Doppler, taken from the delay rate, leaves it
    assert fit.value("cfo_hz") == pytest.approx(0.5e-6 * rec.carrier_hz, rel=0.02)
    assert np.isfinite(fit.value("doppler_hz"))
