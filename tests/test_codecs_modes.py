"""The mode table and the JPEG 2000 rate-quality curve the link-adaptation controller reads."""

from fractions import Fraction

import numpy as np
import pytest

from sagin_hil.codecs import Budget, get_codec
from sagin_hil.codecs.images import load_images
from sagin_hil.codecs.metrics import psnr
from sagin_hil.calibration.quality import measure_j2k_rate_quality
from sagin_hil.codecs.modes import MODES, get_mode, j2k_bits_for_psnr, j2k_rate_quality, load_mode_table


def test_stored_table_has_measured_modes():
    table = load_mode_table()
    assert "1" in table["modes"]
    by_key = {MODES.get(m).table_key: MODES.get(m) for m in MODES}
    for name, row in table["modes"].items():
        assert name in by_key and row["compute_time_s"] > 0
        assert {"bits", "psnr_db", "ssim", "ms_ssim", "compute_time_s"} <= set(row), name
        if by_key[name].analog:  # quality is a curve over the channel SNR
            assert row["symbols"] == 256 * 256 * 3 * Fraction(row["ratio"])
            assert 0 < row["bits"] < 1024  # only the digital side information: the image is in the symbols
            assert len(row["snr_db"]) == len(row["psnr_db"]) == len(row["ssim"]) >= 5
            assert np.all(np.diff(row["psnr_db"]) > 0) and 10 < row["psnr_db"][0] and row["psnr_db"][-1] < 60
        elif by_key[name].codec == "jpeg2000-lossless":  # bit exact
            assert row["bits"] > table["modes"]["1"]["bits"] and row["psnr_db"] == np.inf and row["ssim"] == 1.0
        else:
            assert row["bits"] > 0 and 5 < row["psnr_db"] < 60 and 0 < row["ssim"] <= 1
    vq = [m for m in ("3_1", "3_2", "3_3") if m in table["modes"]]
    bits = [table["modes"][m]["bits"] for m in vq]
    assert bits == sorted(bits)  # finer latent grid, more bits
    curve = j2k_rate_quality()
    assert np.all(np.diff(curve["bpp"]) > 0) and np.all(np.diff(curve["psnr_db"]) > 0)
    assert len(curve["ms_ssim"]) == len(curve["bpp"]) and np.all(np.diff(curve["ms_ssim"]) > 0)


def test_bits_for_psnr_is_monotone_and_accurate():
    n_px = 256 * 256
    budgets = [j2k_bits_for_psnr(q, n_px) for q in (20.0, 25.0, 30.0, 35.0)]
    assert budgets == sorted(budgets) and budgets[0] < budgets[-1]
    # the budget for a 30 dB floor gives ~30 dB mean PSNR on the held-out images
    j2k = get_codec("jpeg2000")
    imgs = load_images(n=3, size=256, split="eval")
    mean_q = np.mean([psnr(img, j2k.decode(j2k.encode(img, Budget(bits=budgets[2])).data)) for _, img in imgs])
    assert mean_q == pytest.approx(30.0, abs=2.5)


def test_measure_rate_quality_small():
    curve = measure_j2k_rate_quality(n_images=2, size=64, bpp_grid=(1.0, 4.0))
    assert curve["psnr_db"][1] > curve["psnr_db"][0] and curve["ssim"][1] > curve["ssim"][0]
    assert len(curve["images"]) == 2


def test_mode_registry_is_the_one_spelling():
    """Every registered mode names a registered codec; its budget and predictions follow from the table."""
    from sagin_hil.codecs import available_codecs
    from sagin_hil.registry import RegistryError

    table = load_mode_table()
    for name in MODES:
        spec = get_mode(name)
        assert spec.name == name and spec.codec in available_codecs()
        assert spec.compute_time_s(table, 1.0) > 0
    j2k, jscc, vq = get_mode("mode1"), get_mode("jscc-1/12"), get_mode("mode3_2")
    assert j2k.budget(0.5, 256 * 256).bits == 32768 and j2k.budget(1e-4, 256 * 256).bits == 2048
    assert jscc.budget(0.0, 256 * 256, snr_db=3.0).snr_db == 3.0 and jscc.symbols(256 * 256) == 256 * 256 * 3 // 12
    assert vq.budget(0.5, 256 * 256).bits is None  # the latent grid fixes its size
    q_lo, q_hi = jscc.psnr_db(table, snr_db=-2.0), jscc.psnr_db(table, snr_db=10.0)
    assert q_hi > q_lo and j2k.psnr_db(table, bits_per_pixel=1.0) > j2k.psnr_db(table, bits_per_pixel=0.1)
    with pytest.raises(RegistryError, match="unknown mode 'mode3_4'; did you mean 'mode3_3'.*choose one of: mode1, mode1-lossless, mode2, mode3_1"):
        get_mode("mode3_4")


def test_codecs_take_a_budget_and_say_what_they_cannot_do():
    from sagin_hil.codecs import CodecError

    img = load_images(n=1, size=64, split="eval")[0][1]
    with pytest.raises(CodecError, match=r"JPEG 2000 needs exactly one of Budget\(bits=...\)"):
        get_codec("jpeg2000").encode(img, Budget())
    vq = get_codec("vq-3_3")
    need = vq.encode(img).n_bits
    with pytest.raises(CodecError, match=f"needs {need} bits.*Budget\\(bits=100\\) is too small"):
        vq.encode(img, Budget(bits=100))
    jscc = get_codec("jscc-1/12")
    with pytest.raises(CodecError, match="too few"):
        jscc.encode(img, Budget(symbols=10, snr_db=5.0))
    with pytest.raises(CodecError, match="positive integer"):
        Budget(bits=-5)
