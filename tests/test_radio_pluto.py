"""PlutoRadio (the Radio interface over pyadi-iio) against the emulated Pluto: scaling, streaming
continuity, gain modes, overflow/underflow accounting, and the errors a bench user meets."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("adi", reason="pyadi-iio (with pylibiio 0.25 and libiio0) is needed")

from sagin_hil.hil.iiod import start_pluto_emulator  # noqa: E402
from sagin_hil.hil.radio import RadioConfig, RadioError, RxResult, open_radio  # noqa: E402

pytestmark = pytest.mark.radio
FS = 1e6


def _cfg(**kw):
    base = dict(kind="pluto-emu", carrier_hz=2.4e9, sample_rate_hz=FS, rx_gain_db=30, tx_gain_db=-10,
                rx_buffer_size=4096)
    base.update(kw)
    return RadioConfig(**base)


def _tone(n, cycles, amp=0.5):
    return (amp * np.exp(2j * np.pi * cycles * np.arange(n) / n)).astype(np.complex64)


def _freq_hz(x):
    return float(np.angle(np.sum(x[1:] * np.conj(x[:-1]))) * FS / (2 * np.pi))


def test_pluto_emu_loopback_level_offset_and_continuity():
    with open_radio(_cfg(tx_carrier_hz=2.4e9 + 25e3)) as radio:
        assert radio.server is not None and radio.uri.startswith("ip:127.0.0.1:")
        radio.tx(_tone(1000, 40), cyclic=True)  # 40 kHz
        a = radio.rx(5000)  # not a multiple of the 4096 buffer: leftovers carry over
        b = radio.rx(7000)
        assert isinstance(a, RxResult) and a.samples.dtype == np.complex64 and len(b.samples) == 7000
        x = np.concatenate([a.samples, b.samples])
        assert abs(_freq_hz(x) - 65e3) < 1.0
        # the phase steps evenly across the rx() boundary (no lost or repeated samples)
        step = np.angle(x[1:] * np.conj(x[:-1]))
        assert np.max(np.abs(step - np.median(step))) < 0.1  # a lost sample would jump by 0.41 rad
        # 0.5 -> 2^13 DAC words: -12 dBFS +7 dBm -10 dB -40 dB +30 dB -> -25 dBFS at the ADC
        assert np.mean(np.abs(x)) == pytest.approx(10 ** (-25 / 20), rel=0.01)
        assert a.metadata["carrier_hz"] == 2.4e9 and a.metadata["radio"] == "pluto-emu"
        assert a.overflows == 0 and a.underflows == 0


def test_configure_changes_gain_and_agc_targets_minus_12_dbfs():
    with open_radio(_cfg()) as radio:
        radio.tx(_tone(1000, 10), cyclic=True)
        low = np.mean(np.abs(radio.rx(4096).samples))
        radio.configure(rx_gain_db=40)
        radio.rx(4096)  # flush the buffer captured at the old gain
        high = np.mean(np.abs(radio.rx(4096).samples))
        assert high / low == pytest.approx(10 ** 0.5, rel=0.01)
        radio.configure(rx_gain_db="fast_attack")
        radio.rx(8192)
        level_db = 20 * np.log10(np.mean(np.abs(radio.rx(4096).samples)))
        assert -13.5 < level_db < -10.5  # AGC target -12 dBFS, 1 dB gain steps
        assert radio.sdr.gain_control_mode_chan0 == "fast_attack"


def test_tx_scaling_and_bad_inputs():
    with open_radio(_cfg()) as radio:
        with pytest.raises(RadioError, match="peak"):
            radio.tx(np.full(100, 1.5 + 0j, np.complex64))
        with pytest.raises(RadioError, match="complex"):
            radio.tx(np.ones(100))
        with pytest.raises(RadioError, match="positive integer"):
            radio.rx(0)
        with pytest.raises(RadioError, match="attenuation"):
            radio.configure(tx_gain_db=5)
        with pytest.raises(RadioError, match=r"\[-3, 71\]"):
            radio.configure(rx_gain_db=90)
        with pytest.raises(RadioError, match="unknown radio setting"):
            radio.configure(carier_hz=1e9)
        with pytest.raises(RadioError, match="refused carrier_hz"):
            radio.configure(carrier_hz=10e6)  # the emulated driver refuses an LO below 70 MHz


def test_burst_then_silence_reports_tx_underflow():
    with open_radio(_cfg()) as radio:
        radio.tx(_tone(3000, 30))  # non-cyclic burst
        res = radio.rx(8192)  # reads past the burst: the DAC ran dry
        assert res.underflows == 1
        assert np.mean(np.abs(res.samples[:2900])) > 100 * np.mean(np.abs(res.samples[3100:]))


def test_realtime_slow_reader_overflows_and_can_raise():
    server = start_pluto_emulator(realtime=True, seed=2)
    try:
        with open_radio(_cfg(kind="pluto", uri=server.uri, sample_rate_hz=2e6, rx_buffer_size=4096)) as radio:
            radio.rx(4096)
            time.sleep(0.15)  # 300k samples pass, far more than 4 kernel buffers
            res = radio.rx(4096 * 3)
            assert res.overflows >= 1
            radio.rx(4096)
        # 4 kernel buffers of 32768 samples = 65 ms of slack before a stalled reader loses samples
        cfg = _cfg(kind="pluto", uri=server.uri, sample_rate_hz=2e6, rx_buffer_size=32768, on_overflow="raise")
        with open_radio(cfg) as radio:
            radio.rx(32768)
            time.sleep(0.4)
            with pytest.raises(RadioError, match="overflowed") as info:
                radio.rx(32768)
            assert len(info.value.partial.samples) == 32768
    finally:
        server.close()


def test_unreachable_uri_is_a_clear_error():
    with pytest.raises(RadioError, match="no Pluto reachable at 'ip:127.0.0.1:1'"):
        open_radio(_cfg(kind="pluto", uri="ip:127.0.0.1:1", timeout_s=1))


def test_emulator_vanishing_mid_run_keeps_received_samples(tmp_path):
    server = start_pluto_emulator(seed=3)
    rec = tmp_path / "vanish"
    radio = open_radio(_cfg(kind="pluto", uri=server.uri, record_path=str(rec), timeout_s=2))
    try:
        radio.tx(_tone(1000, 10), cyclic=True)
        got = [radio.rx(4096) for _ in range(2)]
        threading.Timer(0.05, server.close).start()
        with pytest.raises(RadioError, match="stopped answering") as info:
            for _ in range(1000):
                got.append(radio.rx(4096))
                time.sleep(0.005)
        assert info.value.partial is not None
    finally:
        radio.close()
    from sigmf import sigmffile

    kept = sigmffile.fromfile(str(rec) + ".sigmf-meta").read_samples()
    assert len(kept) == sum(len(r.samples) for r in got) + len(info.value.partial.samples)
    np.testing.assert_array_equal(kept[:4096], got[0].samples)


def test_loopback_burst_with_preamble_decodes_through_pyadi_and_lo_offset():
    """The runner's path: RadioConfig(kind="pluto-emu") -> open_radio -> loopback(burst) -> sync -> bits."""
    rng = np.random.default_rng(9)
    pre = np.exp(1j * np.pi / 4 * rng.integers(0, 8, 64))  # 64 random 8-PSK preamble symbols
    bits = rng.integers(0, 2, (3000, 2))
    data = ((1 - 2 * bits[:, 0]) + 1j * (1 - 2 * bits[:, 1])) / np.sqrt(2)
    sps = 2
    burst = (0.7 * np.repeat(np.concatenate([pre, data]), sps)).astype(np.complex64)
    with open_radio(_cfg(tx_carrier_hz=2.4e9 + 3e3)) as radio:
        res = radio.loopback(burst)
    y = res.samples.astype(np.complex128)
    ref = np.repeat(pre, sps)
    corr = np.abs(np.correlate(y[: len(y) - len(burst)], ref, mode="valid"))
    start = int(np.argmax(corr))
    assert corr[start] > 5 * np.median(corr)
    seg = y[start : start + len(burst)]
    # the LO offset is a pure rotation: estimate it from the preamble and remove it
    z = seg[: len(ref)] * np.conj(ref)
    f_hz = np.angle(np.sum(z[1:] * np.conj(z[:-1]))) * FS / (2 * np.pi)
    assert abs(f_hz - 3e3) < 20.0
    seg = seg * np.exp(-2j * np.pi * f_hz * np.arange(len(seg)) / FS)
    seg *= np.exp(-1j * np.angle(np.sum(seg[: len(ref)] * np.conj(ref))))
    sym = seg[len(ref) :: sps][: len(data)]
    got = np.stack([sym.real < 0, sym.imag < 0], axis=1).astype(int)
    assert np.array_equal(got, bits)


def test_runner_path_external_emulator_transfer_is_time_aligned():
    """start_pluto_emulator() + RadioConfig(kind="pluto-emu", uri=server.uri): transfer() acts like
    ChannelEmulator.process - received sample k is sent sample k (bench cable: no delay)."""
    server = start_pluto_emulator(seed=4)
    try:
        with open_radio(_cfg(uri=server.uri, rx_gain_db=40)) as radio:
            assert radio.server is None  # the caller owns this emulator
            radio.rx(1000)  # leave a leftover behind: transfer() must drop it
            rng = np.random.default_rng(2)
            for n in (3000, 5000):  # bursts of different lengths (the TX buffer is recreated)
                x = (0.5 * np.exp(2j * np.pi * rng.random(n))).astype(np.complex64)
                y = radio.transfer(x).samples
                gain = np.vdot(x, y) / np.vdot(x, x)
                # 0.5 -> -12 dBFS at the DAC, +7 dBm -10 dB -> -15 dBm, -40 dB cable, +40 dB gain -> -15 dBFS
                assert abs(gain) == pytest.approx(10 ** (-15 / 20) / 0.5, rel=0.02)
                assert np.mean(np.abs(y - gain * x) ** 2) < 1e-3 * np.mean(np.abs(y) ** 2)
    finally:
        server.close()
