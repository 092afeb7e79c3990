"""Quality per mode at sample level (calibration/mode_quality.py): images through one emulated hop."""

import json

import numpy as np
import pytest

from sagin_hil.calibration.mode_quality import measure_mode_quality


@pytest.fixture(scope="module")
def table():
    return measure_mode_quality(["mode1", "jscc-1/12"], [-9.0, 6.0, 20.0], n_images=2, size=64, seed=1)


def test_digital_mode_is_the_codec_itself_on_a_clean_link_and_collapses_below_every_mcs(table):
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr
    from sagin_hil.codecs.modes import MODES

    codec, spec = get_codec("jpeg2000"), MODES.get("mode1")
    clean = [psnr(img, codec.decode(codec.encode(img, spec.budget(1.0, 64 * 64)).data))
             for _, img in load_images(n=2, size=64, split="eval")]
    row = table["modes"]["mode1"]
    assert row["psnr_db"][1] == pytest.approx(np.mean(clean), abs=1e-9)  # every packet got through
    assert row["psnr_db"][2] == pytest.approx(np.mean(clean), abs=1e-9)
    assert row["psnr_db"][0] < np.mean(clean) - 10  # -9 dB: below the most robust MCS, the image is lost
    assert row["mcs"][0] != row["mcs"][2]  # link adaptation's pick follows the Es/N0


def test_analog_mode_degrades_gracefully_and_approaches_ideal_awgn(table):
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.base import Budget
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr

    row = table["modes"]["jscc-1/12"]
    assert row["psnr_db"][0] < row["psnr_db"][1] < row["psnr_db"][2]
    codec, rng = get_codec("jscc-1/12"), np.random.default_rng(0)
    ideal = []
    for _, img in load_images(n=2, size=64, split="eval"):
        p = codec.encode(img, Budget(snr_db=20.0))
        noise = (rng.standard_normal(p.symbols.size) + 1j * rng.standard_normal(p.symbols.size)) * np.sqrt(0.5 / 100)
        ideal.append(psnr(img, codec.decode(p.data, symbols=p.symbols + noise, snr_db=20.0)))
    # the PHY's estimation (timing, phase, gain) costs a little at 20 dB, never more than the ideal channel gives
    assert np.mean(ideal) - 2.0 < row["psnr_db"][2] < np.mean(ideal) + 0.5


def test_cli_writes_table_with_provenance_and_plot(tmp_path):
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["calibrate", "mode-quality", "--modes", "mode1", "--es-n0-db", "0:4:4",
                                   "--images", "1", "--size", "64", "--out", str(tmp_path / "q.json"),
                                   "--plot", str(tmp_path / "q.png")])
    assert res.exit_code == 0, res.output
    t = json.loads((tmp_path / "q.json").read_text())
    assert t["es_n0_db"] == [0.0, 4.0] and len(t["modes"]["mode1"]["psnr_db"]) == 2
    assert t["provenance"]["channel"] == "AWGN" and t["provenance"]["images"]
    assert (tmp_path / "q.png").stat().st_size > 0
    bad = CliRunner().invoke(app, ["calibrate", "mode-quality", "--modes", "mode9"])
    assert bad.exit_code != 0 and "mode9" in bad.output
