"""RRC pulse shaping: Nyquist property, round trips, chunked == one call, resampling accuracy, bad inputs."""

import numpy as np
import pytest

from sagin_hil.phy.modulation import Constellation
from sagin_hil.phy.pulse import RrcDecimator, RrcInterpolator, RrcMatchedFilter, fractional_resample, rrc_taps


def _chunks(x, rng):
    cuts = np.sort(rng.integers(0, x.size, 7))
    return np.split(x, cuts)  # includes empty and one-sample chunks at random


@pytest.mark.parametrize("rolloff", [0.1, 0.25, 0.35, 1.0])
def test_rrc_is_unit_energy_and_its_autocorrelation_is_nyquist(rolloff):
    sps = 4
    h = rrc_taps(rolloff, sps, 16)
    assert np.sum(h**2) == pytest.approx(1.0)
    np.testing.assert_allclose(h, h[::-1], atol=1e-12)
    rc = np.convolve(h, h)
    centre = rc.size // 2
    isi = rc[centre % sps :: sps]
    isi = np.delete(isi, centre // sps)
    assert rc[centre] == pytest.approx(1.0, abs=1e-9)
    assert np.max(np.abs(isi)) < (0.02 if rolloff < 0.2 else 0.005)  # only truncation leaves ISI
    spec = np.abs(np.fft.fftshift(np.fft.fft(h, 4096))) ** 2
    f = np.fft.fftshift(np.fft.fftfreq(4096, d=1 / sps))  # in units of the symbol rate
    assert np.sum(spec[np.abs(f) > (1 + rolloff) / 2 + 0.05]) / np.sum(spec) < 1e-3


@pytest.mark.parametrize("name", ["qpsk", "16qam", "64qam"])
def test_interpolate_then_decimate_recovers_symbols(name):
    c = Constellation(name)
    sym = c.map(np.random.default_rng(0).integers(0, 2, 3000 * c.bits_per_symbol, dtype=np.uint8))
    tx = RrcInterpolator(4, 0.25)
    x = tx(sym)
    assert x.size == 4 * sym.size and x.dtype == np.complex64
    assert np.mean(np.abs(x[200:-200]) ** 2) == pytest.approx(1.0, rel=0.05)
    x = np.concatenate([x, tx(np.zeros(16, np.complex64))])  # flush the pulse tails of the last symbols
    y = RrcDecimator(4, 0.25)(np.concatenate([x, np.zeros(64, np.complex64)]))
    err = y[: sym.size] - sym
    assert 10 * np.log10(np.mean(np.abs(err) ** 2)) < -50  # truncation ISI of a 16-symbol span


def test_noise_after_decimation_has_variance_sigma2_over_sps():
    rng = np.random.default_rng(1)
    sigma2 = 0.5
    noise = np.sqrt(sigma2 / 2) * (rng.standard_normal(400_000) + 1j * rng.standard_normal(400_000))
    y = RrcDecimator(4, 0.25)(noise)
    # 100k samples: relative std of a variance estimate is 1/sqrt(100k) ~ 0.3 %
    assert np.var(y) == pytest.approx(sigma2 / 4, rel=0.02)


@pytest.mark.parametrize("block", ["interp", "mf", "decim"])
def test_chunked_equals_one_call(block):
    rng = np.random.default_rng(2)
    make = {
        "interp": lambda: RrcInterpolator(4, 0.25),
        "mf": lambda: RrcMatchedFilter(4, 0.35),
        "decim": lambda: RrcDecimator(4, 0.25, phase=1),
    }[block]
    x = (rng.standard_normal(5001) + 1j * rng.standard_normal(5001)).astype(np.complex64)
    whole = make()(x)
    blk = make()
    chunked = np.concatenate([blk(c) for c in _chunks(x, rng)])
    np.testing.assert_array_equal(chunked, whole)


def test_decimator_phase_selects_the_offset_sample():
    c = Constellation("qpsk")
    sym = c.map(np.random.default_rng(3).integers(0, 2, 2000, dtype=np.uint8))
    x = RrcInterpolator(4, 0.25)(sym)
    delayed = np.concatenate([np.zeros(2, np.complex64), x])  # two samples of delay
    y = RrcDecimator(4, 0.25, phase=2)(delayed)
    assert np.mean(np.abs(y[:900] - sym[:900]) ** 2) < 1e-4


def test_fractional_resample_of_a_tone_matches_the_analytic_signal():
    f = 0.03  # cycles per input sample, well inside the band
    n = np.arange(4000)
    x = np.exp(2j * np.pi * f * n)
    ratio, offset = 1 / (1 + 50e-6), 0.37
    y = fractional_resample(x, ratio, offset)
    t = offset + np.arange(y.size) * ratio
    ref = np.exp(2j * np.pi * f * t)
    inner = slice(40, y.size - 40)  # away from the edges, where the window is complete
    assert np.max(np.abs(y[inner] - ref[inner])) < 1e-3


def test_bad_inputs():
    with pytest.raises(ValueError, match="rolloff"):
        rrc_taps(0.0, 4)
    with pytest.raises(ValueError, match="sps"):
        RrcInterpolator(1, 0.25)
    with pytest.raises(ValueError, match="1-D"):
        RrcMatchedFilter(4, 0.25)(np.zeros((2, 3), np.complex64))
    with pytest.raises(ValueError, match="phase"):
        RrcDecimator(4, 0.25, phase=4)
    with pytest.raises(ValueError, match="ratio"):
        fractional_resample(np.zeros(10), 3.0)
