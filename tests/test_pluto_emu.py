"""The emulated Pluto driven by the real, unmodified pyadi-iio + pylibiio + libiio stack, and by raw sockets."""

import math
import socket
import threading
import time

import numpy as np
import pytest

adi = pytest.importorskip("adi", reason="pyadi-iio (with pylibiio 0.25 and libiio0) is needed")
iio = pytest.importorskip("iio")

from sagin_hil.hil.iiod import start_pluto_emulator  # noqa: E402

pytestmark = pytest.mark.radio
FS = 1_000_000
ATT_DB = 40.0
TX_FS_DBM = 7.0


@pytest.fixture
def server():
    srv = start_pluto_emulator(seed=7, attenuation_db=ATT_DB)
    yield srv
    srv.close()


@pytest.fixture
def pluto(server):
    sdr = _setup(adi.Pluto(server.uri))
    yield sdr
    _teardown(sdr)


def _setup(sdr, rx_lo=2_400_000_000, tx_lo=2_400_000_000, rx_gain=30, tx_gain=-10.0):
    sdr.sample_rate = FS
    sdr.rx_lo, sdr.tx_lo = rx_lo, tx_lo
    sdr.rx_rf_bandwidth = sdr.tx_rf_bandwidth = FS
    sdr.gain_control_mode_chan0 = "manual"
    sdr.rx_hardwaregain_chan0 = rx_gain
    sdr.tx_hardwaregain_chan0 = tx_gain
    sdr.rx_buffer_size = 8192
    return sdr


def _teardown(sdr):
    sdr.tx_destroy_buffer()
    sdr.rx_destroy_buffer()
    sdr.close()


def _tone(n, cycles, amp=2**14):
    """A complex tone with a whole number of cycles in n samples (so a cyclic buffer repeats seamlessly)."""
    return (amp * np.exp(2j * np.pi * cycles * np.arange(n) / n)).astype(np.complex64)


def _freq_hz(x, fs=FS):
    """Frequency of a clean tone from its mean phase step (resolves far below one FFT bin)."""
    return float(np.angle(np.sum(x[1:] * np.conj(x[:-1]))) * fs / (2 * np.pi))


def _expected_counts(tx_word, tx_gain_db, rx_gain_db, att_db=ATT_DB):
    """|RX word| for a TX tone of |tx_word| by the emulator's documented level plan."""
    p_dbm = TX_FS_DBM + 20 * math.log10(tx_word / 32768) + tx_gain_db - att_db + rx_gain_db
    return 2048 * 10 ** (p_dbm / 20)


def test_settings_round_trip_through_pyadi(pluto):
    assert pluto.sample_rate == FS
    assert pluto.rx_lo == 2_400_000_000 and pluto.tx_lo == 2_400_000_000
    assert pluto.rx_rf_bandwidth == FS and pluto.tx_rf_bandwidth == FS
    assert pluto.rx_hardwaregain_chan0 == 30 and pluto.tx_hardwaregain_chan0 == -10
    assert pluto.gain_control_mode_chan0 == "manual"
    # 1 MS/s needs the FIR decimation: pyadi-iio loaded a FIR and enabled it, as on the hardware
    assert pluto._get_iio_attr("out", "voltage_filter_fir_en", False) == 1
    assert pluto.filter == [128, 4, 128, 4]
    pluto.tx_hardwaregain_chan0 = -20.3  # the driver rounds attenuation to 0.25 dB
    assert pluto.tx_hardwaregain_chan0 == -20.25
    pluto._set_iio_dev_attr_str("xo_correction", "40000010")
    assert pluto._get_iio_dev_attr("xo_correction") == 40000010
    with pytest.raises(OSError):  # outside the 70 MHz - 6 GHz LO range: -EINVAL from the "driver"
        pluto.rx_lo = 10_000_000
    with pytest.raises(OSError):
        pluto.gain_control_mode_chan0 = "turbo"
    with pytest.raises(OSError):  # disabling the FIR at 1 MS/s is refused
        pluto._set_iio_attr("out", "voltage_filter_fir_en", False, 0)


@pytest.mark.parametrize("lo_offset_hz", [0, 12_500, -37_000])
def test_cyclic_tone_appears_at_tone_plus_lo_difference(server, lo_offset_hz):
    sdr = _setup(adi.Pluto(server.uri), tx_lo=2_400_000_000 + lo_offset_hz)
    try:
        n, cycles = 1000, 50  # 50 kHz at 1 MS/s
        sdr.tx_cyclic_buffer = True
        sdr.tx(_tone(n, cycles))
        x = sdr.rx()
        assert x.dtype == np.complex128 and len(x) == 8192
        assert abs(_freq_hz(x) - (50_000 + lo_offset_hz)) < 1.0
        # level: 2^14 word = -6 dBFS, -10 dB TX, -40 dB cable, +30 dB RX gain
        assert np.mean(np.abs(x)) == pytest.approx(_expected_counts(2**14, -10, 30), rel=0.01)
    finally:
        _teardown(sdr)


def test_rx_and_tx_gain_scale_the_level(pluto):
    pluto.tx_cyclic_buffer = True
    pluto.tx(_tone(1000, 100))
    levels = {}
    for rx_gain, tx_gain in [(20, -10.0), (30, -10.0), (30, -20.0)]:
        pluto.rx_hardwaregain_chan0 = rx_gain
        pluto.tx_hardwaregain_chan0 = tx_gain
        levels[(rx_gain, tx_gain)] = np.mean(np.abs(pluto.rx()))
    assert levels[(30, -10.0)] / levels[(20, -10.0)] == pytest.approx(10 ** 0.5, rel=0.01)
    assert levels[(30, -10.0)] / levels[(30, -20.0)] == pytest.approx(10 ** 0.5, rel=0.01)


def test_12_bit_adc_clips_at_high_gain(pluto):
    pluto.tx_cyclic_buffer = True
    pluto.tx(_tone(1000, 10))
    pluto.rx_hardwaregain_chan0 = 71  # the input would be ~+22 dBFS
    x = pluto.rx()
    re, im = x.real, x.imag
    assert re.max() == 2047 and re.min() == -2048 and im.max() == 2047 and im.min() == -2048
    assert np.mean((np.abs(re) >= 2047) | (np.abs(im) >= 2047)) > 0.5
    assert np.all(re == np.round(re))  # integer ADC words


def test_noise_floor_is_ktb_plus_noise_figure(pluto):
    pluto.rx_hardwaregain_chan0 = 71  # nothing transmitted: thermal noise only
    x = np.concatenate([pluto.rx() for _ in range(4)])
    noise_dbm = -174 + 5 + 10 * math.log10(FS)
    expected_var = 2048**2 * 10 ** ((noise_dbm + 71) / 10) + 2 / 12  # + quantisation of I and Q
    assert np.var(x) == pytest.approx(expected_var, rel=0.05)
    assert abs(np.mean(x)) < 1.0


def test_qpsk_burst_non_cyclic_crosses_intact(pluto):
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, (2000, 2))
    sym = ((1 - 2 * bits[:, 0]) + 1j * (1 - 2 * bits[:, 1])) / np.sqrt(2)
    burst = np.repeat(sym, 4) * 2**14  # 4 samples per symbol
    pluto.tx_cyclic_buffer = False
    pluto.tx(burst.astype(np.complex64))
    x = np.concatenate([pluto.rx(), pluto.rx()])
    # a burst is followed by silence: find where the energy is and slice the symbol centres
    start = int(np.argmax(np.abs(x) > 0.5 * np.max(np.abs(x))))
    y = x[start + 2 : start + 2 + 4 * len(sym) : 4]
    got = np.stack([(y.real < 0), (y.imag < 0)], axis=1).astype(int)
    assert np.array_equal(got, bits)
    assert np.mean(np.abs(x[start + 4 * len(sym) + 10 :])) < 2.0  # only noise after the burst


def test_digital_loopback_is_bit_exact(pluto):
    pluto.loopback = 1
    rng = np.random.default_rng(5)
    words = (rng.integers(-2000, 2000, 8192) + 1j * rng.integers(-2000, 2000, 8192)) * 16
    pluto.tx_cyclic_buffer = True
    pluto.tx(words.astype(np.complex64))
    x = pluto.rx()
    assert np.array_equal(x, words / 16)


def test_dds_tone_without_dma(pluto):
    pluto.dds_single_tone(100_000, 0.5)
    x = pluto.rx()
    assert abs(_freq_hz(x) - 100_000) < 1.0
    assert np.mean(np.abs(x)) == pytest.approx(_expected_counts(0.5 * 32768, -10, 30), rel=0.02)


def test_two_clients_at_once(server):
    tx_side = _setup(adi.Pluto(server.uri), tx_lo=2_400_020_000)
    rx_side = adi.Pluto(server.uri)
    rx_side.rx_buffer_size = 4096
    errors = []

    def poll_attrs():
        try:
            for _ in range(30):
                assert tx_side.tx_lo == 2_400_020_000
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        tx_side.tx_cyclic_buffer = True
        tx_side.tx(_tone(1000, 30))
        th = threading.Thread(target=poll_attrs)
        th.start()
        x = rx_side.rx()
        th.join()
        assert not errors
        assert abs(_freq_hz(x) - 50_000) < 1.0  # 30 kHz tone + 20 kHz LO difference
        # the RX buffer is one per device: a second open while it is held is refused with EBUSY
        tx_side.rx_buffer_size = 1024
        with pytest.raises(OSError):
            tx_side.rx()
    finally:
        _teardown(rx_side)
        _teardown(tx_side)


def _exchange(sock, payload, expect_lines=1):
    sock.sendall(payload)
    data = b""
    while data.count(b"\n") < expect_lines:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_raw_protocol_framing_and_garbage(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        assert _exchange(s, b"VERSION\r\n").startswith(b"0.24.")
        reply = _exchange(s, b"PRINT\r\n", 2)
        length, rest = reply.split(b"\n", 1)
        while len(rest) < int(length) + 1:
            rest += s.recv(65536)
        assert rest[: int(length)].startswith(b"<?xml") and rest[int(length) :] == b"\n"
        assert b'name="cf-ad9361-lpc"' in rest
        assert _exchange(s, b"ZPRINT\r\n") == b"-22\n"
        assert _exchange(s, b"BINARY\r\n") == b"-22\n"
        assert _exchange(s, b"FROB the knob\r\n") == b"-22\n"
        assert _exchange(s, b"READ iio:device9 frequency\r\n") == b"-19\n"
        assert _exchange(s, b"READ iio:device0 OUTPUT altvoltage0 nope\r\n") == b"-2\n"
        assert _exchange(s, b"READ iio:device0 OUTPUT altvoltage0 frequency\r\n", 2) == b"10\n2400000000\n"
        assert _exchange(s, b"WRITE ad9361-phy OUTPUT altvoltage0 frequency 10\r\n2450000000") == b"10\n"
        assert _exchange(s, b"WRITE iio:device0 OUTPUT altvoltage0 frequency 2\r\n-1") == b"-22\n"
        assert _exchange(s, b"\x00\xff" * 3000 + b"\r\n") == b"-22\n"  # binary junk, over-long
        assert _exchange(s, b"READBUF iio:device3 400\r\n") == b"-9\n"  # no buffer open
        assert _exchange(s, b"OPEN iio:device3 100 zz\r\n") == b"-22\n"
        assert _exchange(s, b"OPEN iio:device3 100 00000003\r\n") == b"0\n"
        reply = _exchange(s, b"READBUF iio:device3 400\r\n", 2)
        head, mask, data = reply.split(b"\n", 2)
        while len(data) < 400:
            data += s.recv(65536)
        assert head == b"400" and mask == b"00000003" and len(data) == 400
        words = np.frombuffer(data, "<i2")
        assert words.min() >= -2048 and words.max() <= 2047
        assert _exchange(s, b"CLOSE iio:device3\r\n") == b"0\n"
        s.sendall(b"EXIT\r\n")
        assert s.recv(10) == b""  # server closed this session
    sdr = adi.Pluto(server.uri)  # and still serves others
    assert sdr.rx_lo == 2_450_000_000
    sdr.close()


def test_client_disconnect_frees_the_rx_buffer(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    assert _exchange(s, b"OPEN iio:device3 100 00000003\r\n") == b"0\n"
    s.close()  # dropped without CLOSE
    deadline = time.monotonic() + 2
    while server._rx_owner is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    sdr = _setup(adi.Pluto(server.uri))
    assert len(sdr.rx()) == 8192
    _teardown(sdr)


def _scenario_rx(link, start_time_s, fs, tone_hz, n_reads=3):
    from sagin_hil.phy.channel.scenario import Scenario

    sc = Scenario.default()
    srv = start_pluto_emulator(scenario=sc, link=link, seed=11, start_time_s=start_time_s)
    try:
        sdr = adi.Pluto(srv.uri)
        sdr.sample_rate = int(fs)
        sdr.rx_lo = sdr.tx_lo = 2_000_000_000
        sdr.rx_rf_bandwidth = sdr.tx_rf_bandwidth = int(fs)
        sdr.gain_control_mode_chan0 = "manual"
        sdr.rx_hardwaregain_chan0 = 30
        sdr.rx_buffer_size = 16384
        n = int(fs / 1000)  # 1 ms buffer: a whole number of tone cycles for kHz tones
        sdr.tx_cyclic_buffer = True
        sdr.tx(_tone(n, tone_hz / 1000))
        xs = [sdr.rx() for _ in range(n_reads)]
        _teardown(sdr)
        return sc, xs
    finally:
        srv.close()


def test_scenario_channel_leo_doppler_reaches_the_receiver():
    fs, t0 = 2_000_000, 100.0
    sc, xs = _scenario_rx("leo0->uav0", t0, fs, 10_000)
    x = xs[-1]  # after the 2.5 ms propagation delay has filled
    t_mid = t0 + (2.5 * 16384) / fs
    doppler = sc.link_state("leo0", "uav0", t_mid).doppler_hz
    assert abs(doppler) > 50e3  # a real Ka-band LEO Doppler
    assert abs(_freq_hz(x, fs) - (10_000 + doppler)) < 100.0
    # the first buffer starts with the propagation delay: silence until the first wavefront arrives
    delay_samples = int(sc.link_state("leo0", "uav0", t0).delay_s * fs)
    assert np.mean(np.abs(xs[0][: delay_samples - 100])) < 0.2 * np.mean(np.abs(x))


def test_scenario_channel_sets_the_snr():
    """uav0 -> user0 (2 GHz, Rician K = 10 dB, 67 Hz fading): the received SNR is the link budget's."""
    fs = 1_000_000
    sc, xs = _scenario_rx("uav0->user0", 0.0, fs, 20_000, n_reads=10)
    x = np.concatenate(xs[1:])  # 147 ms: about ten fading periods, so mean |h|^2 is close to 1
    snr_db = sc.link_state("uav0", "user0", 0.0).snr_db
    z = x * np.exp(-2j * np.pi * 20_000 * np.arange(len(x)) / fs)  # the tone at DC, fading slowly
    L = 101  # 0.1 ms: the 67 Hz fading is flat over it, the noise averages down by L
    smooth = np.convolve(z, np.ones(L) / L, mode="valid")
    resid = z[L // 2 : L // 2 + len(smooth)] - smooth
    noise_var = np.mean(np.abs(resid) ** 2) / (1 - 1 / L)
    measured = 10 * np.log10((np.mean(np.abs(smooth) ** 2) - noise_var / L) / noise_var)
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_two_radio_bench_oscillator_offset_and_xo_correction():
    from sagin_hil.hil.iiod import start_pluto_pair

    a_srv, b_srv = start_pluto_pair(xo_ppm=(10.0, -5.0), seed=5)
    a = _setup(adi.Pluto(a_srv.uri))
    b = _setup(adi.Pluto(b_srv.uri))
    try:
        a.tx_cyclic_buffer = True
        a.tx(_tone(1000, 20))  # 20 kHz from radio A
        x = b.rx()
        # A's LO runs 10 ppm fast, B's 5 ppm slow: 15 ppm of 2.4 GHz = 36 kHz apart
        assert abs(_freq_hz(x) - (20_000 + 36_000)) < 1.0
        a._set_iio_dev_attr_str("xo_correction", "40000400")  # each radio told its true XO frequency
        b._set_iio_dev_attr_str("xo_correction", "39999800")
        b.rx()
        assert abs(_freq_hz(b.rx()) - 20_000) < 1.0
        assert np.mean(np.abs(a.rx())) < 5.0  # A hears B, which sends nothing: only noise
    finally:
        _teardown(a)
        _teardown(b)
        a_srv.close()
        b_srv.close()


_WORDS = ["READ", "WRITE", "OPEN", "CLOSE", "READBUF", "WRITEBUF", "PRINT", "TIMEOUT", "SET", "GETTRIG",
          "iio:device0", "iio:device3", "iio:device2", "ad9361-phy", "INPUT", "OUTPUT", "DEBUG", "BUFFER",
          "voltage0", "altvoltage1", "frequency", "hardwaregain", "00000003", "CYCLIC", "BUFFERS_COUNT",
          "0", "1", "4", "-1", "99999999999", "0x10"]


def test_fuzzed_commands_never_stop_the_server(server):
    """Random command lines (known words, numbers and raw bytes) on fresh sessions: replies are integers
    or values, sessions end cleanly, and the server keeps answering."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies

    line = st.lists(st.one_of(st.sampled_from(_WORDS), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6)

    @hyp.settings(max_examples=60, deadline=None, derandomize=True)
    @hyp.given(line)
    def check(words):
        raw = b" ".join(w if isinstance(w, bytes) else w.encode() for w in words).replace(b"\n", b" ")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(raw + b"\r\n")
            s.shutdown(socket.SHUT_WR)  # a WRITE waiting for its payload sees the end of the stream
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        first = reply.split(b"\n", 1)[0]
        assert reply == b"" or first.lstrip(b"-").isdigit() or first.startswith((b"0.24.", b"Available"))

    check()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        assert _exchange(s, b"VERSION\r\n").startswith(b"0.24.")
