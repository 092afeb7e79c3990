"""`sagin-hil ber`: csv and png written, simulated BER against theory, coded BLER column, bad options."""

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app

runner = CliRunner()


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_uncoded_ber_csv_and_png(tmp_path):
    res = runner.invoke(app, ["ber", "--modulation", "qpsk", "--snr-db", "0:6:3", "--out", str(tmp_path),
                              "--target-errors", "1000", "--max-bits", "400000"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "ber.csv")
    assert [float(r["esn0_db"]) for r in rows] == [0.0, 3.0, 6.0]
    for r in rows:
        ber, th, bits = float(r["ber_sim"]), float(r["ber_theory_uncoded"]), int(r["bits"])
        assert abs(ber - th) < 4 * np.sqrt(th / bits)  # binomial
        assert float(r["ebn0_db"]) == pytest.approx(float(r["esn0_db"]) - 10 * np.log10(2), abs=1e-3)
    png = (tmp_path / "ber.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_coded_rician_writes_bler(tmp_path):
    res = runner.invoke(app, ["ber", "--modulation", "16qam", "--code", "nr:256:512", "--channel", "rician",
                              "--k-factor-db", "10", "--snr-db", "4,16", "--out", str(tmp_path),
                              "--target-errors", "10", "--max-bits", "20000"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "ber.csv")
    assert float(rows[0]["bler_sim"]) > float(rows[1]["bler_sim"])  # 4 dB fails, 16 dB decodes
    assert float(rows[1]["bler_sim"]) < 0.1 and int(rows[1]["blocks"]) > 0
    assert (tmp_path / "ber.png").stat().st_size > 10_000


def test_bad_options_are_rejected(tmp_path):
    res = runner.invoke(app, ["ber", "--modulation", "qam3", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "unknown modulation" in res.output
    res = runner.invoke(app, ["ber", "--snr-db", "9:1:1", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "START:STOP:STEP" in res.output
    res = runner.invoke(app, ["ber", "--code", "nr:10", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "unknown code" in res.output


def test_dvbs2_code_gets_its_family_decoder_and_decoder_is_honoured(tmp_path):
    # The short 1/4 DVB-S2 code decodes at -2.5 dB with its family default (layered NMS 0.875, 50
    # iterations) and fails every block there with the NR default scale 0.75 (docs/ldpc.md).
    args = ["ber", "--code", "dvbs2:1/4:short", "--snr-db", "-2.5", "--target-errors", "5", "--max-bits", "16200"]
    res = runner.invoke(app, args + ["--out", str(tmp_path / "auto")])
    assert res.exit_code == 0, res.output
    assert "layered-nms scale 0.875, 50 iterations" in res.output
    assert float(_rows(tmp_path / "auto" / "ber.csv")[0]["bler_sim"]) <= 0.2
    res = runner.invoke(app, args + ["--decoder", "layered-nms:0.75", "--out", str(tmp_path / "nms075")])
    assert res.exit_code == 0, res.output
    assert "layered-nms scale 0.75, 50 iterations" in res.output
    assert float(_rows(tmp_path / "nms075" / "ber.csv")[0]["bler_sim"]) == 1.0


def test_nr_code_keeps_scale_075_and_iterations_are_honoured(tmp_path):
    res = runner.invoke(app, ["ber", "--code", "nr:256:512", "--snr-db", "6", "--target-errors", "2",
                              "--max-bits", "2048", "--out", str(tmp_path)])
    assert res.exit_code == 0 and "layered-nms scale 0.75, 10 iterations" in res.output
    res = runner.invoke(app, ["ber", "--code", "nr:256:512", "--snr-db", "6", "--target-errors", "2", "--max-bits",
                              "2048", "--decoder", "flooding-spa", "--iterations", "7", "--out", str(tmp_path)])
    assert res.exit_code == 0 and "flooding-spa, 7 iterations" in res.output


def test_bad_decoder_names_the_choices(tmp_path):
    res = runner.invoke(app, ["ber", "--code", "nr:256:512", "--decoder", "min-sum", "--out", str(tmp_path)])
    assert res.exit_code == 2
    text = " ".join(res.output.replace("│", " ").split())
    assert "'min-sum'" in text and "layered-nms[:SCALE]" in text and "flooding-spa" in text
    res = runner.invoke(app, ["ber", "--code", "nr:256:512", "--decoder", "layered-nms:1.5", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "scale=1.5" in res.output
    res = runner.invoke(app, ["ber", "--decoder", "flooding-spa", "--out", str(tmp_path)])  # uncoded
    assert res.exit_code == 2 and "--code" in res.output
