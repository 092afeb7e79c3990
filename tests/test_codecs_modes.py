"""The mode table and the JPEG 2000 rate-quality curve the link-adaptation controller reads."""

from fractions import Fraction

import numpy as np
import pytest

from sagin_hil.codecs import get_codec
from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.metrics import psnr
from sagin_hil.codecs.modes import (
    MODES, j2k_bits_for_psnr, j2k_rate_quality, load_mode_table, measure_j2k_rate_quality,
)


def test_stored_table_has_measured_modes():
    table = load_mode_table()
    assert "1" in table["modes"]
    for name, row in table["modes"].items():
        assert name in MODES and row["compute_time_s"] > 0
        if MODES[name]["carrier"] == "analog symbols":  # quality is a curve over the channel SNR
            assert row["symbols"] == 256 * 256 * 3 * Fraction(row["ratio"])
            assert len(row["snr_db"]) == len(row["psnr_db"]) == len(row["ssim"]) >= 5
            assert np.all(np.diff(row["psnr_db"]) > 0) and 10 < row["psnr_db"][0] and row["psnr_db"][-1] < 60
        else:
            assert row["bits"] > 0 and 5 < row["psnr_db"] < 60 and 0 < row["ssim"] <= 1
    vq = [m for m in ("3_1", "3_2", "3_3") if m in table["modes"]]
    bits = [table["modes"][m]["bits"] for m in vq]
    assert bits == sorted(bits)  # finer latent grid, more bits
    curve = j2k_rate_quality()
    assert np.all(np.diff(curve["bpp"]) > 0) and np.all(np.diff(curve["psnr_db"]) > 0)


def test_bits_for_psnr_is_monotone_and_accurate():
    n_px = 256 * 256
    budgets = [j2k_bits_for_psnr(q, n_px) for q in (20.0, 25.0, 30.0, 35.0)]
    assert budgets == sorted(budgets) and budgets[0] < budgets[-1]
    # the budget for a 30 dB floor gives ~30 dB mean PSNR on the held-out images
    j2k = get_codec("jpeg2000")
    imgs = load_images(n=3, size=256, split="eval")
    mean_q = np.mean([psnr(img, j2k.decode(j2k.encode(img, budget_bits=budgets[2]).data)) for _, img in imgs])
    assert mean_q == pytest.approx(30.0, abs=2.5)


def test_measure_rate_quality_small():
    curve = measure_j2k_rate_quality(n_images=2, size=64, bpp_grid=(1.0, 4.0))
    assert curve["psnr_db"][1] > curve["psnr_db"][0] and curve["ssim"][1] > curve["ssim"][0]
    assert len(curve["images"]) == 2
