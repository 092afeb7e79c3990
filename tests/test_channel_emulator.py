"""The streaming channel emulator: exact streaming, SNR, fading statistics, Doppler, delay, oscillators."""

import math
import time

import numpy as np
import pytest
from scipy.special import j0

from sagin_hil.datatypes import SampleBlock
from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams
from sagin_hil.phy.channel.scenario import Scenario
from sagin_hil.phy.channel.tdl import tdl_taps


def cgauss(n, seed=0, power=1.0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * math.sqrt(power / 2)).astype(np.complex64)


def run_chunks(em, x, cuts):
    return np.concatenate([em.process(c) for c in np.split(x, cuts)])


FULL = ChannelParams(
    snr_db=12.0, doppler_hz=3210.5, doppler_rate_hz_per_s=-544.0, delay_s=37.3e-6, delay_rate_s_per_s=2e-6,
    k_factor_db=7.0, max_doppler_hz=150.0, cfo_ppm=0.7, sco_ppm=30.0, phase_noise_dbc_hz=-80.0,
)


@pytest.mark.parametrize("params", [FULL, ChannelParams(tdl="NTN-TDL-C", delay_spread_s=2e-6, max_doppler_hz=90.0,
                                                        snr_db=5.0, doppler_hz=-1e4)])
def test_chunked_equals_one_call(params):
    x = cgauss(60_000, 1)
    one = ChannelEmulator(1e6, 2e9, params, seed=5).process(x)
    cuts = [1, 2, 1000, 1023, 1025, 7777, 30_000, 59_999]
    chunked = run_chunks(ChannelEmulator(1e6, 2e9, params, seed=5), x, cuts)
    assert np.array_equal(one, chunked)
    # an update at the same sample gives the same stream however the rest is cut
    a = ChannelEmulator(1e6, 2e9, params, seed=5)
    ya = [a.process(x[:20_000])]
    a.update(doppler_hz=-2000.0, snr_db=3.0, k_factor_db=2.0, max_doppler_hz=300.0)
    ya.append(a.process(x[20_000:]))
    b = ChannelEmulator(1e6, 2e9, params, seed=5)
    yb = [run_chunks(b, x[:20_000], [5, 9000])]
    b.update(doppler_hz=-2000.0, snr_db=3.0, k_factor_db=2.0, max_doppler_hz=300.0)
    yb.append(run_chunks(b, x[20_000:], [3, 31_000]))
    assert np.array_equal(np.concatenate(ya), np.concatenate(yb))
    assert not np.array_equal(np.concatenate(ya), one)  # the update did change the stream
    other_seed = ChannelEmulator(1e6, 2e9, params, seed=6).process(x)
    assert not np.allclose(one, other_seed)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("mode", ["measured", "signal_power", "noise_power"])
def test_measured_snr(snr_db, mode):
    x = cgauss(200_000, 2, power=2.5)
    kw = {"noise_power": 2.5 * 10 ** (-snr_db / 10)} if mode == "noise_power" else {"snr_db": snr_db}
    if mode == "signal_power":
        kw["signal_power"] = 2.5
    y = ChannelEmulator(1e6, 0.0, ChannelParams(**kw), seed=3).process(x)
    noise = y - x  # no delay: the interpolator is exactly transparent
    if mode == "measured":  # the level is known from the first sample on
        assert noise[0] == 0 and np.all(noise[1:300] != 0)
    measured = 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(noise) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.2)
    assert abs(np.mean(noise)) < 0.02 * math.sqrt(np.mean(np.abs(noise) ** 2))
    # the noise is circular Gaussian: equal I/Q power, kurtosis of a Gaussian
    assert np.var(noise.real) == pytest.approx(np.var(noise.imag), rel=0.03)
    assert np.mean(noise.real**4) / np.var(noise.real) ** 2 == pytest.approx(3.0, rel=0.05)


def test_snr_counts_the_gain_and_fading():
    x = cgauss(400_000, 4)
    p = ChannelParams(snr_db=8.0, gain_db=-20.0, k_factor_db=3.0, max_doppler_hz=2000.0)
    em = ChannelEmulator(1e6, 0.0, p, seed=4)
    y = em.process(x)
    clean = ChannelEmulator(1e6, 0.0, ChannelParams(gain_db=-20.0, k_factor_db=3.0, max_doppler_hz=2000.0), seed=4).process(x)
    snr = 10 * np.log10(np.mean(np.abs(clean) ** 2) / np.mean(np.abs(y - clean) ** 2))
    assert snr == pytest.approx(8.0, abs=0.2)
    assert 10 * np.log10(np.mean(np.abs(clean) ** 2)) == pytest.approx(-20.0, abs=0.3)  # fading has unit mean


def fading_samples(k_factor_db, n=1_500_000, fs=1e5, fd=400.0, seed=0):
    em = ChannelEmulator(fs, 0.0, ChannelParams(k_factor_db=k_factor_db, max_doppler_hz=fd), seed=seed)
    return em.process(np.ones(n, np.complex64)).astype(np.complex128)


def k_moment_estimate(h):
    p = np.abs(h) ** 2
    g = np.var(p) / np.mean(p) ** 2
    return math.sqrt(1 - g) / (1 - math.sqrt(1 - g))


@pytest.mark.parametrize("k_db", [3.0, 10.0])
def test_rician_k_factor_moment_estimator(k_db):
    est = np.mean([k_moment_estimate(fading_samples(k_db, n=1_000_000, seed=s)) for s in range(2)])
    assert est == pytest.approx(10 ** (k_db / 10), rel=0.10)


def test_fading_autocorrelation_is_j0():
    fs, fd = 1e5, 400.0
    h = fading_samples(-math.inf, 800_000, fs, fd, seed=1)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, rel=0.05)
    spec = np.fft.fft(h, 2 * len(h))
    r = np.fft.ifft(np.abs(spec) ** 2)[: len(h)] / np.arange(len(h), 0, -1)
    r = r / r[0]
    lags = np.arange(0, int(2.5 * fs / fd), 25)
    theory = j0(2 * np.pi * fd * lags / fs)
    assert np.max(np.abs(r.real[lags] - theory)) < 0.02
    assert np.max(np.abs(r.imag[lags])) < 0.02


def test_doppler_spectrum_is_jakes():
    fs, fd = 1e5, 400.0
    h = fading_samples(-math.inf, 1_000_000, fs, fd, seed=7)
    spec = np.abs(np.fft.fft(h)) ** 2
    f = np.abs(np.fft.fftfreq(len(h), 1 / fs))
    total = spec.sum()
    assert spec[f <= 1.02 * fd].sum() / total > 0.995
    edge = spec[(f >= 0.8 * fd) & (f <= 1.0 * fd)].sum()
    centre = spec[f <= 0.2 * fd].sum()
    # Jakes: S(f) ~ 1/sqrt(1 - (f/fd)^2), so the band ratio is (pi/2 - asin 0.8) / asin 0.2 = 3.19
    assert edge / centre == pytest.approx((math.pi / 2 - math.asin(0.8)) / math.asin(0.2), rel=0.3)


def test_doppler_shift_rate_and_phase_continuity():
    fs = 1e6
    em = ChannelEmulator(fs, 2e9, ChannelParams(doppler_hz=12_345.0, doppler_rate_hz_per_s=5e4, cfo_ppm=0.5))
    x = np.ones(200_000, np.complex64)
    y = em.process(x)
    inst = np.angle(y[1:] * np.conj(y[:-1])) * fs / (2 * np.pi)
    t = (np.arange(len(inst)) + 0.5) / fs
    expected = 12_345.0 + 1000.0 + 5e4 * t  # cfo 0.5 ppm of 2 GHz = 1 kHz
    assert np.max(np.abs(inst - expected)) < 0.05
    em.update(doppler_hz=-7000.0, doppler_rate_hz_per_s=0.0)
    y2 = em.process(x[:1000])
    step = np.angle(y2[0] * np.conj(y[-1])) * fs / (2 * np.pi)  # the change lands on the next sample
    assert abs(step - expected[-1] - 5e4 / fs) < 0.5
    assert np.allclose(np.angle(y2[1:] * np.conj(y2[:-1])) * fs / (2 * np.pi), -6000.0, atol=0.05)


def bandlimited(n, seed=0, bw=0.2):
    x = cgauss(n, seed)
    spec = np.fft.fft(x)
    spec[np.abs(np.fft.fftfreq(n)) > bw / 2] = 0
    return np.fft.ifft(spec).astype(np.complex64)


def ideal_delay(x, d):
    f = np.fft.fftfreq(len(x))
    return np.fft.ifft(np.fft.fft(x) * np.exp(-2j * np.pi * f * d))


def test_fractional_delay():
    fs = 1e6
    x = bandlimited(32_768, 1)
    y = ChannelEmulator(fs, 0.0, ChannelParams(delay_s=7 / fs)).process(x)
    assert np.array_equal(y[7:], x[:-7]) and not np.any(y[:7])  # integer delay: exact, zeros before
    for d in (10.3, 2.5, 0.25):
        y = ChannelEmulator(fs, 0.0, ChannelParams(delay_s=d / fs)).process(x)
        ref = ideal_delay(x, d)
        sl = slice(100, -100)
        err = np.mean(np.abs(y[sl] - ref[sl]) ** 2) / np.mean(np.abs(ref[sl]) ** 2)
        assert 10 * np.log10(err) < -40, d


def test_latency_flushes_a_burst():
    fs = 1e6
    em = ChannelEmulator(fs, 0.0, ChannelParams(delay_s=123.4e-6, tdl="NTN-TDL-C", delay_spread_s=2e-6))
    burst = cgauss(1000, 3)
    y = np.concatenate([em.process(burst), em.process(np.zeros(em.latency_samples(), np.complex64))])
    tail = em.process(np.zeros(100, np.complex64))
    assert not np.any(tail) and np.sum(np.abs(y) ** 2) > 0.5 * np.sum(np.abs(burst) ** 2)
    assert em.latency_samples() == math.ceil(123.4 + 14.8124 * 2) + 3


def test_long_delay_and_clock_offset():
    fs = 1e6
    x = np.exp(2j * np.pi * 0.01 * np.arange(300_000)).astype(np.complex64)
    em = ChannelEmulator(fs, 0.0, ChannelParams(delay_s=0.0045, sco_ppm=200.0))
    y = em.process(x)
    assert not np.any(y[:4497]) and abs(y[4600]) == pytest.approx(1.0, abs=1e-3)
    # a fast receiver clock reads the stream at (1 - 200 ppm): the tone lands at 0.01 (1 - 2e-4) cycles/sample
    inst = np.angle(y[5000:][1:] * np.conj(y[5000:][:-1])) / (2 * np.pi)
    assert np.mean(inst) == pytest.approx(0.01 * (1 - 2e-4), rel=2e-6)
    assert em.current_delay_s() == pytest.approx(0.0045 + 200e-6 * 0.3, rel=1e-9)


def test_phase_noise_variance():
    fs, l_dbc, f_off = 1e6, -70.0, 1e3
    em = ChannelEmulator(fs, 0.0, ChannelParams(phase_noise_dbc_hz=l_dbc, phase_noise_offset_hz=f_off), seed=2)
    y = em.process(np.ones(400_000, np.complex64))
    assert np.allclose(np.abs(y), 1.0, atol=1e-6)
    phase = np.unwrap(np.angle(y))
    m = 1000  # Wiener phase: var(phi(t + T) - phi(t)) = D T, D = 4 pi^2 f^2 10^(L/10)
    d = phase[m:] - phase[:-m]
    diffusion = 4 * np.pi**2 * f_off**2 * 10 ** (l_dbc / 10)
    assert np.var(d[::m]) == pytest.approx(diffusion * m / fs, rel=0.15)


def test_ntn_tdl_power_delay_profile():
    fs, ds = 10e6, 1e-6
    delays, powers, los = tdl_taps("NTN-TDL-C", ds)
    assert powers.sum() == pytest.approx(1.0) and los[0] and 10 * np.log10(powers[0] / powers[1]) == pytest.approx(10.224)
    period, reps = 400, 3000
    x = np.zeros(period * reps, np.complex64)
    x[::period] = 1.0
    em = ChannelEmulator(fs, 0.0, ChannelParams(tdl="NTN-TDL-C", delay_spread_s=ds, max_doppler_hz=2000.0), seed=1)
    h = em.process(x).reshape(reps, period).astype(np.complex128)
    pdp = (np.abs(h) ** 2).mean(axis=0)
    assert pdp.sum() == pytest.approx(1.0, rel=0.05)
    late = int(round(delays[2] * fs))
    assert pdp[late - 3 : late + 4].sum() == pytest.approx(powers[2], rel=0.25)
    assert pdp[:3].sum() == pytest.approx(powers[0] + powers[1], rel=0.05)
    # the first delay holds the LoS tap and a Rayleigh tap: Rician with K = 10.224 dB
    assert k_moment_estimate(h[:, 0]) == pytest.approx(10 ** 1.0224, rel=0.25)


def test_realtime_pacing_within_one_percent():
    fs = 2e6
    em = ChannelEmulator(fs, 0.0, ChannelParams(snr_db=10.0, doppler_hz=100.0), realtime=True)
    x = cgauss(20_000, 1)
    em.process(x)  # warm up and start the clock
    t0, n0 = time.perf_counter(), em.samples_processed
    for _ in range(50):
        em.process(x)
    elapsed = time.perf_counter() - t0
    assert elapsed == pytest.approx((em.samples_processed - n0) / fs, rel=0.01)


def test_for_link_follows_the_scenario():
    sc = Scenario.default()
    fs = 2e6
    em = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=1)
    t_start = 60.0
    st = sc.link_state("leo0", "uav0", t_start)
    n = 100_000
    x = np.ones(n, np.complex64)
    blocks = [em.process(SampleBlock(x, fs, 25e9, t_start + i * n / fs)) for i in range(3)]
    y = np.concatenate([b.samples for b in blocks])
    d0 = int(st.delay_s * fs)
    clean_em = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=1, snr_db=None)
    clean = np.concatenate([clean_em.process(SampleBlock(x, fs, 25e9, t_start + i * n / fs)).samples for i in range(3)])
    assert not np.any(clean[: d0 - 3]) and np.all(np.abs(clean[d0 + 3 : d0 + 10]) > 0.99)  # the propagation delay
    assert np.mean(np.abs(y[: d0 - 3]) ** 2) > 0  # the receiver hears noise before the signal arrives
    seg = slice(d0 + 10, None)
    snr = 10 * np.log10(np.mean(np.abs(clean[seg]) ** 2) / np.mean(np.abs(y[seg] - clean[seg]) ** 2))
    assert snr == pytest.approx(st.snr_db, abs=0.2)
    inst = np.angle(clean[seg][1:] * np.conj(clean[seg][:-1])) * fs / (2 * np.pi)
    t_mid = t_start + (d0 + 10 + len(inst) / 2) / fs
    assert np.mean(inst) == pytest.approx(sc.link_state("leo0", "uav0", t_mid).doppler_hz, abs=2.0)
    # chunking does not matter, and a blocked link (below 40 deg) gives noise only
    em2 = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=1)
    y2 = np.concatenate([em2.process(SampleBlock(c, fs, 25e9, t_start + o / fs)).samples
                         for c, o in zip(np.split(np.ones(3 * n, np.complex64), [777, 150_001]), [0, 777, 150_001])])
    assert np.array_equal(y, y2)
    late = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, seed=1, snr_db=None)
    assert not np.any(late.process(SampleBlock(x, fs, 25e9, 400.0)).samples)
    pre = ChannelEmulator.for_link(sc, "leo0", "uav0", fs, doppler_scale=0.0, snr_db=None)
    yp = pre.process(SampleBlock(x, fs, 25e9, t_start)).samples[d0 + 10 :]
    assert np.max(np.abs(np.angle(yp[1:] * np.conj(yp[:-1])))) < 1e-6
    assert em.stats()["link"]["tx"] == "leo0"


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match=r"delay_s = -1.0"):
        ChannelParams(delay_s=-1.0)
    with pytest.raises(ValueError, match="snr_db or noise_power"):
        ChannelParams(snr_db=3.0, noise_power=1.0)
    with pytest.raises(ValueError, match=r"tdl = 'TDL-X'.*NTN-TDL-C"):
        ChannelParams(tdl="TDL-X")
    em = ChannelEmulator(1e6)
    with pytest.raises(ValueError, match=r"unknown channel parameter\(s\) \['dopler_hz'\]"):
        em.update(dopler_hz=3.0)
    with pytest.raises(ValueError, match="complex64"):
        em.process(np.ones(4))
    with pytest.raises(ValueError, match="sample_rate_hz = 2000000.0 differs"):
        em.process(SampleBlock(np.ones(4, np.complex64), 2e6))
    with pytest.raises(ValueError, match="sample_rate_hz = 0"):
        ChannelEmulator(0)


def test_counter_based_gaussian():
    """gauss.py: N(0, 1) by its moments, KS and tails (tolerances from the counts); any slice of a stream
    equals the same draws made on their own (chunking); the two draws of a Box-Muller pair independent;
    the float32 polynomial logarithm and sine/cosine to 3e-7."""
    from scipy import stats

    from sagin_hil.phy.channel.gauss import _log_mantissa, _sin_cos_quarter, fill_standard_normal, seed_key

    n = 2_000_000
    out = np.empty(n)
    fill_standard_normal(out, seed_key(11), 0)
    assert abs(out.mean()) < 4 / math.sqrt(n) and out.var() == pytest.approx(1.0, abs=4 * math.sqrt(2 / n))
    assert stats.kstest(out, "norm").pvalue > 1e-3
    for th in (3.0, 4.0):
        expect = n * 2 * stats.norm.sf(th)
        assert abs((np.abs(out) > th).sum() - expect) < 4 * math.sqrt(expect)
    assert abs(np.corrcoef(out[0::2] ** 2, out[1::2] ** 2)[0, 1]) < 4 / math.sqrt(n / 2)
    for i0, m in [(0, 1), (1, 1), (777, 1000), (778, 1001), (n - 3, 3)]:
        part = np.empty(m)
        fill_standard_normal(part, seed_key(11), i0)
        assert np.array_equal(part, out[i0:i0 + m]), (i0, m)
    other = np.empty(1000)
    fill_standard_normal(other, seed_key(12), 0)
    assert abs(np.corrcoef(other, out[:1000])[0, 1]) < 0.15
    m = np.linspace(1.0, 2.0, 4001, dtype=np.float32)[:-1]
    assert max(abs(_log_mantissa(v) - math.log(v)) for v in m) < 3e-7  # float32, as the samples
    for x in np.linspace(-math.pi / 4, math.pi / 4, 2001, dtype=np.float32):
        s, c = _sin_cos_quarter(x)
        assert abs(s - math.sin(x)) < 3e-7 and abs(c - math.cos(x)) < 3e-7


def test_chunking_property_random_parameters():
    """Property: for any parameters and any cut points, chunked processing equals one call."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    params = st.builds(
        ChannelParams,
        snr_db=st.one_of(st.none(), st.floats(-5, 40)),
        delay_s=st.floats(0, 300e-6),
        delay_rate_s_per_s=st.floats(-1e-4, 1e-4),
        doppler_hz=st.floats(-2e5, 2e5),
        doppler_rate_hz_per_s=st.floats(-1e4, 1e4),
        k_factor_db=st.one_of(st.none(), st.floats(-10, 20), st.just(-math.inf)),
        max_doppler_hz=st.floats(0, 5e3),
        sco_ppm=st.floats(-100, 100),
        phase_noise_dbc_hz=st.one_of(st.none(), st.floats(-110, -60)),
        tdl=st.sampled_from([None, "NTN-TDL-A", "NTN-TDL-D"]),
    )

    @settings(max_examples=12, deadline=None)
    @given(params, st.lists(st.integers(1, 4999), max_size=6, unique=True), st.integers(0, 2**32))
    def check(p, cuts, seed):
        x = cgauss(5000, seed % 7)
        one = ChannelEmulator(1e6, 2e9, p, seed=seed).process(x)
        assert np.all(np.isfinite(one))
        assert np.array_equal(one, run_chunks(ChannelEmulator(1e6, 2e9, p, seed=seed), x, sorted(cuts)))

    check()
