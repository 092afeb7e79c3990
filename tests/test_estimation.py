"""SNR / EVM estimators: bias within 0.5 dB from -2 to 25 dB (Monte Carlo), blind M2M4, bad inputs."""

import numpy as np
import pytest

from sagin_hil.phy.estimation import evm_decision_directed, evm_rms, snr_data_aided, snr_m2m4
from sagin_hil.phy.modulation import Constellation


def _awgn_symbols(name, n, snr_db, rng, gain=0.7 * np.exp(0.4j)):
    c = Constellation(name)
    x = c.map(rng.integers(0, 2, n * c.bits_per_symbol, dtype=np.uint8)).astype(np.complex128)
    n0 = abs(gain) ** 2 / 10 ** (snr_db / 10)
    noise = np.sqrt(n0 / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    return gain * x + noise, x, c


@pytest.mark.parametrize("snr_db", [-2.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
def test_data_aided_snr_and_evm_unbiased(snr_db):
    rng = np.random.default_rng(int(snr_db * 10) + 100)
    est, evm = [], []
    for _ in range(200):  # 200 bursts of 400 known symbols (a preamble plus a few pilot blocks)
        y, x, _ = _awgn_symbols("qpsk", 400, snr_db, rng)
        est.append(snr_data_aided(y, x).snr_db)
        evm.append(evm_rms(y, x))
    # mean of the dB estimate: std of one estimate is ~ 4.34 * sqrt(2/400) ~ 0.3 dB, so the mean of 200 is
    # known to ~0.02 dB and any bias above 0.5 dB would show
    assert abs(np.mean(est) - snr_db) < 0.5
    assert abs(20 * np.log10(np.mean(evm)) + snr_db) < 0.5
    assert np.std(est) < 0.5


@pytest.mark.parametrize("name,kurt", [("qpsk", 1.0), ("8psk", 1.0), ("16qam", 1.32)])
@pytest.mark.parametrize("snr_db", [-2.0, 5.0, 15.0])
def test_m2m4_blind_snr_unbiased(name, kurt, snr_db):
    rng = np.random.default_rng(7)
    est = [snr_m2m4(_awgn_symbols(name, 4000, snr_db, rng)[0], kurt).snr_db for _ in range(30)]
    assert abs(np.mean(est) - snr_db) < 0.5


def test_data_aided_gain_is_recovered():
    rng = np.random.default_rng(3)
    y, x, _ = _awgn_symbols("16qam", 5000, 20.0, rng)
    est = snr_data_aided(y, x)
    assert abs(est.gain - 0.7 * np.exp(0.4j)) < 0.01
    assert est.es == pytest.approx(0.49, rel=0.02)


def test_decision_directed_evm_matches_at_high_snr_and_is_biased_low_at_low_snr():
    rng = np.random.default_rng(4)
    y, x, c = _awgn_symbols("16qam", 20000, 25.0, rng, gain=1.0)
    assert evm_decision_directed(y, c.points) == pytest.approx(evm_rms(y, x), rel=0.02)
    y, x, c = _awgn_symbols("16qam", 20000, 5.0, rng, gain=1.0)
    assert evm_decision_directed(y, c.points) < 0.8 * evm_rms(y, x)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        snr_data_aided(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="all zero"):
        snr_data_aided(np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="kurtosis"):
        snr_m2m4(np.ones(4), 3.0)
