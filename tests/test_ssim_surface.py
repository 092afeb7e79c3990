"""The SSIM(CR, SNR) surface: its inverse, its fit, the shipped fit's error, and the command that re-fits it."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.calibration.ssim_surface import (PAPER_002_TABLE_I, SsimSurface, fit_surface, jpeg_bits_for,
                                                load_jpeg_table, load_surface)
from sagin_hil.cli import app

TRUE = SsimSurface((0.1, 0.9, 0.03, -7.0, -4.0, 6.0))


def test_inverse_gives_the_requirement_back_and_the_limits_are_infinite():
    for r in (1 / 12, 1 / 8, 1 / 6):
        q = np.linspace(0.2, float(TRUE.ceiling(r)) - 1e-3, 9)
        s = TRUE.snr_db_for(r, q)
        assert np.all(np.diff(s) > 0)  # a higher requirement needs a higher SNR
        np.testing.assert_allclose(TRUE.ssim(r, s), q, atol=1e-9)
    assert TRUE.snr_db_for(1 / 12, 0.95) == np.inf and TRUE.snr_db_for(1 / 12, 0.05) == -np.inf
    assert TRUE.snr_db_for(1 / 6, 0.8) < TRUE.snr_db_for(1 / 12, 0.8)  # more symbols, less SNR


def test_bad_ratio_and_params_are_named():
    with pytest.raises(ValueError, match=r"compression ratio .* \(0, 1\]"):
        TRUE.ssim(0.0, 5.0)
    with pytest.raises(ValueError, match="width w > 0"):
        SsimSurface((0.1, 0.9, 0.0, 0.0, 0.0, -1.0))


def test_fit_recovers_a_known_surface():
    r, s = np.meshgrid([1 / 12, 1 / 6], np.arange(-2, 21, 2.0))
    pts = {"ratio": r.ravel().tolist(), "snr_db": s.ravel().tolist(), "ssim": TRUE.ssim(r, s).ravel().tolist()}
    fit = fit_surface(pts)
    assert fit.fit["rmse"] < 1e-5
    grid = np.linspace(-2, 20, 23)
    for ratio in (1 / 12, 1 / 9, 1 / 6):
        np.testing.assert_allclose(fit.ssim(ratio, grid), TRUE.ssim(ratio, grid), atol=1e-4)
    back = SsimSurface.from_dict(json.loads(json.dumps(fit.to_dict())))
    np.testing.assert_allclose(back.params, fit.params)


def test_shipped_surface_fits_its_measurements():
    sf = load_surface()
    m = sf.fit["measured"]
    err = sf.ssim(m["ratio"], m["snr_db"]) - np.asarray(m["ssim"])
    assert sf.fit["rmse"] == pytest.approx(float(np.sqrt(np.mean(err**2))), rel=1e-6)
    assert sf.fit["rmse"] < 0.01 and sf.fit["max_abs_error"] < 0.02  # the stored error is the error
    assert m["split"] == "eval" and m["n_tiles"] >= 64  # held-out tiles only
    # more channel uses, better quality at every SNR; quality rises with SNR
    s = np.asarray(m["snr_db"])[np.asarray(m["ratio"]) == min(m["ratio"])]
    assert np.all(sf.ssim(1 / 6, s) > sf.ssim(1 / 12, s)) and np.all(np.diff(sf.ssim(1 / 12, s)) > 0)


def test_the_quantile_surface_lies_below_the_mean_and_fits_its_points():
    mean, p10 = load_surface(), load_surface(quantile=0.1)
    m = mean.fit["measured"]
    err = p10.ssim(m["ratio"], m["snr_db"]) - np.asarray(m["ssim_p10"])
    assert p10.fit["rmse"] == pytest.approx(float(np.sqrt(np.mean(err**2))), rel=1e-6) and p10.fit["rmse"] < 0.02
    assert np.all(p10.ssim(m["ratio"], m["snr_db"]) < mean.ssim(m["ratio"], m["snr_db"]))
    assert np.all(p10.snr_db_for(1 / 6, [0.8, 0.85]) > mean.snr_db_for(1 / 6, [0.8, 0.85]))  # it asks for more
    with pytest.raises(ValueError, match="quantile 0.5 is not stored"):
        load_surface(quantile=0.5)


def test_jpeg_table_and_the_paper_preset():
    t = load_jpeg_table()
    qs = np.linspace(min(t["ssim"]), max(t["ssim"]), 7)
    bits = [jpeg_bits_for(t, q) for q in qs]
    assert np.all(np.diff(bits) >= 0) and jpeg_bits_for(t, 0.9999) == np.inf
    assert len(PAPER_002_TABLE_I) == 6 and PAPER_002_TABLE_I[0][0] == 126.216875 and len(PAPER_002_TABLE_I[0]) == 6


def test_calibrate_jscc_surface_quick_writes_a_fit(tmp_path):
    out = tmp_path / "surface.json"
    res = CliRunner().invoke(app, ["calibrate", "jscc-surface", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["fit"]["points"] == 12 and data["fit"]["rmse"] < 0.03 and "RMSE" in res.output
    assert SsimSurface.from_dict(data).ssim(1 / 6, 10.0) > 0.5 and data["jpeg_rate_ssim"]["quality"][0] == 5
    res = CliRunner().invoke(app, ["calibrate", "jscc-surface", "--quick", "--snr-db", "5:1:1", "--out", str(out)])
    assert res.exit_code != 0 and "start:stop:step" in res.output
