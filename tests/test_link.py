"""Packet link: bytes (or analog symbols) -> samples -> channel (delay, carrier offset, Doppler rate, clock offset,
noise) -> bytes (or equalised symbols)."""

import dataclasses

import numpy as np
import pytest

from sagin_hil.phy.frame import ANALOG, BurstHeader, HeaderCodec, HeaderError, SideInfoCodec
from sagin_hil.phy.link import AnalogPlan, LinkConfig, PacketPlan, PacketReceiver, PacketTransmitter
from sagin_hil.phy.mcs import MCS_TABLE
from sagin_hil.phy.pulse import fractional_resample
from sagin_hil.phy.sync import Rotator
from sagin_hil.phy.theory import ber_awgn

CFG = LinkConfig(symbol_rate_hz=1.0e6, sps=4, ldpc_k=1024, max_burst_symbols=4096)


@pytest.fixture(scope="module")
def ends():
    return PacketTransmitter(CFG), PacketReceiver(CFG)


def _channel(x, rng, esn0_db, cfo_hz=0.0, ppm=0.0, delay=700.0, rate_hz_s=0.0):
    """Noise-only lead-in of `delay` samples (fractional), clock offset, carrier offset + Doppler rate, AWGN
    with Es/N0 = esn0_db referred to the burst power (samples have mean power 1 including guards)."""
    fs = CFG.sample_rate_hz
    x = np.concatenate([np.zeros(int(delay) + 40, np.complex64), x, np.zeros(3000, np.complex64)])
    if ppm or delay % 1:
        x = fractional_resample(x, 1 / (1 + ppm * 1e-6), 40 + int(delay) - delay)
    else:
        x = x[40:]
    x = Rotator(cfo_hz / fs, rate_hz_s / fs**2, rng.uniform(0, 2 * np.pi))(x)
    active = np.abs(x) > 1e-3
    p_burst = np.mean(np.abs(x[active]) ** 2)
    n0 = CFG.sps * p_burst * 10 ** (-esn0_db / 10)
    return x + np.sqrt(n0 / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))


def _payload(rng, n):
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize(
    "mcs,esn0_db,cfo_frac,ppm,rate_hz_s",
    [
        ("qpsk-1/2", 8.0, 0.05, 50.0, 0.0),
        ("16qam-3/4", 16.0, -0.05, -50.0, 500.0),
        ("64qam-3/4", 24.0, 0.03, 30.0, -500.0),
    ],
)
def test_round_trip_with_offsets(ends, mcs, esn0_db, cfo_frac, ppm, rate_hz_s):
    tx, rx = ends
    rng = np.random.default_rng(1)
    data = _payload(rng, 6000)
    s = tx.modulate(data, mcs, seq=321)
    assert s.dtype == np.complex64 and np.mean(np.abs(s) ** 2) == pytest.approx(1.0, rel=1e-4)
    assert s.size / CFG.sample_rate_hz == pytest.approx(tx.air_time_s(len(data), mcs))
    delay = 1234.6
    cfo_hz = cfo_frac * CFG.symbol_rate_hz
    pkt = rx.demodulate(_channel(s, rng, esn0_db, cfo_hz, ppm, delay, rate_hz_s))
    assert pkt is not None and pkt.header_ok
    assert pkt.payload == data
    assert pkt.block_ok.all() and pkt.bler == 0.0 and pkt.n_blocks == PacketPlan.make(CFG, mcs, 6000).n_blocks
    assert pkt.n_bursts > 1 and pkt.bursts_ok == pkt.n_bursts  # several fragments
    assert (pkt.mcs, pkt.seq) == (mcs, 321)
    assert abs(pkt.snr_db - esn0_db) < 0.7
    assert abs(pkt.start_sample - delay) < 1.5
    assert abs(pkt.clock_offset_ppm - ppm) < 10
    assert abs(pkt.cfo_hz - cfo_hz) < 0.01 * CFG.symbol_rate_hz
    assert pkt.evm_rms == pytest.approx(10 ** (-esn0_db / 20), rel=0.15)
    # pre-FEC BER of the whole chain within ~0.5 dB of the uncoded theory
    mod = mcs.split("-")[0]
    assert ber_awgn(mod, esn0_db + 0.5) * 0.8 < pkt.ber < ber_awgn(mod, esn0_db - 0.5) * 1.2


@pytest.mark.parametrize("mcs", [m.name for m in MCS_TABLE])
def test_every_mcs_round_trips_at_high_snr(ends, mcs):
    tx, rx = ends
    rng = np.random.default_rng(2)
    data = _payload(rng, 700)
    pkt = rx.demodulate(_channel(tx.modulate(data, mcs, 9), rng, 30.0, delay=100.0))
    assert pkt.payload == data and pkt.mcs == mcs and pkt.bler == 0.0 and pkt.ber == 0.0


def test_empty_and_one_byte_payloads(ends):
    tx, rx = ends
    rng = np.random.default_rng(3)
    for data in (b"", b"\x5a"):
        pkt = rx.demodulate(_channel(tx.modulate(data, "qpsk-1/2", 1), rng, 20.0))
        assert pkt.header_ok and pkt.payload == data and pkt.n_blocks == len(data)


def test_noise_alone_gives_none_and_bad_samples_do_not_raise(ends):
    _, rx = ends
    rng = np.random.default_rng(4)
    assert rx.demodulate((rng.standard_normal(50_000) + 1j * rng.standard_normal(50_000)).astype(np.complex64)) is None
    assert rx.demodulate(np.zeros(0, np.complex64)) is None
    junk = np.full(20_000, np.nan + 1j * np.inf, dtype=np.complex64)
    assert rx.demodulate(junk) is None
    rx.demodulate(np.full(20_000, 1e30, dtype=np.complex64))  # overflowing values: no exception escapes


@pytest.mark.parametrize("recover", [False, True])
def test_a_garbled_burst_header_is_implied_by_the_others_or_its_blocks_are_lost(ends, recover):
    """Burst 1's header is noise: its CRC fails. With recover_bursts its blocks are read with the header the
    other bursts imply, where they put it, and decode; without, they are lost and zero-filled."""
    tx, rx = ends[0], PacketReceiver(dataclasses.replace(CFG, recover_bursts=recover))
    rng = np.random.default_rng(5)
    data = _payload(rng, 6000)
    s = tx.modulate(data, "qpsk-1/2", 77)
    plan = PacketPlan.make(CFG, "qpsk-1/2", len(data))
    burst_samples = [(tx.fmt.burst_len(plan.n_data(i)) + CFG.guard_symbols) * CFG.sps for i in range(plan.frag_count)]
    start = burst_samples[0]
    hdr = slice(start + (256 + 16 + 40) * CFG.sps, start + (256 + 16 + 300) * CFG.sps)  # inside burst 1's header
    s = s.copy()
    s[hdr] = (rng.standard_normal(hdr.stop - hdr.start) + 1j * rng.standard_normal(hdr.stop - hdr.start)).astype(np.complex64)
    pkt = rx.demodulate(_channel(s, rng, 12.0, 20e3, 20.0))
    assert pkt.header_ok and len(pkt.payload) == len(data)
    lost = np.zeros(plan.n_blocks, bool)
    lost[list(plan.frag_blocks(1))] = not recover
    assert pkt.bursts_recovered == int(recover)
    np.testing.assert_array_equal(pkt.block_ok, ~lost)
    assert pkt.bursts_ok == plan.frag_count - 1 and "crc" in pkt.header_errors
    got, want = np.frombuffer(pkt.payload, np.uint8), np.frombuffer(data, np.uint8)
    bb = plan.block_bytes
    for b in range(plan.n_blocks):
        seg = slice(b * bb, min((b + 1) * bb, len(data)))
        if lost[b]:
            assert not got[seg].any()  # zero-filled
        else:
            np.testing.assert_array_equal(got[seg], want[seg])
    assert pkt.bler == pytest.approx(lost.mean())


def test_bad_inputs_raise_clear_errors(ends):
    tx, rx = ends
    with pytest.raises(ValueError, match="unknown MCS 'qpsk-7/8'"):
        tx.modulate(b"abc", "qpsk-7/8", 0)
    with pytest.raises(ValueError, match="payload must be bytes"):
        tx.modulate("abc", "qpsk-1/2", 0)
    with pytest.raises(ValueError, match="seq=70000"):
        tx.modulate(b"abc", "qpsk-1/2", 70000)
    with pytest.raises(ValueError, match="1-D"):
        rx.demodulate(np.zeros((2, 100), np.complex64))
    with pytest.raises(ValueError, match="max 255"):
        tx.air_time_s(10_000_000, "bpsk-1/2")
    with pytest.raises(ValueError, match="ldpc_k"):
        LinkConfig(ldpc_k=20)
    with pytest.raises(ValueError, match="rolloff"):
        LinkConfig(rolloff=0.0)
    with pytest.raises(ValueError, match="demapper"):
        LinkConfig(demapper="fast")


def test_receiver_with_another_config_rejects_the_header_plan():
    tx = PacketTransmitter(LinkConfig(ldpc_k=2048))
    rx = PacketReceiver(LinkConfig(ldpc_k=1024))
    rng = np.random.default_rng(6)
    pkt = rx.demodulate(_channel(tx.modulate(_payload(rng, 300), "qpsk-1/2", 3), rng, 20.0))
    assert pkt is not None and not pkt.header_ok and pkt.header_errors == ["plan"]


@pytest.mark.parametrize("esn0_db", [-2.0, 10.0, 25.0])
def test_reported_snr_and_evm_unbiased_through_the_whole_receiver(ends, esn0_db):
    tx, rx = ends
    rng = np.random.default_rng(7)
    s = tx.modulate(_payload(rng, 1500), "qpsk-1/2", 1)
    est, evm = [], []
    for _ in range(4):
        pkt = rx.demodulate(_channel(s, rng, esn0_db, rng.uniform(-5e4, 5e4), rng.uniform(-50, 50), rng.uniform(100, 2000)))
        est.append(pkt.snr_db)
        evm.append(pkt.evm_rms)
    # per-packet std ~0.1 dB (measured): the mean of 4 sits well inside +-0.5 dB when unbiased
    assert abs(np.mean(est) - esn0_db) < 0.5
    assert abs(20 * np.log10(np.mean(evm)) + esn0_db) < 0.5


def test_corrupted_sample_buffers_never_raise(ends):
    """Fuzz: truncation, NaN/inf spans, huge and tiny scales, spliced copies; the receiver must return
    None or a packet whose payload has the announced length."""
    tx, rx = ends
    rng = np.random.default_rng(8)
    data = _payload(rng, 2500)
    clean = _channel(tx.modulate(data, "16qam-1/2", 5), rng, 15.0, 1e4, 10.0)
    for trial in range(12):
        x = clean.copy()
        kind = trial % 6
        a, b = np.sort(rng.integers(0, x.size, 2))
        if kind == 0:
            x = x[: rng.integers(100, x.size)]  # cut anywhere, even inside a burst
        elif kind == 1:
            x[a:b] = np.nan
        elif kind == 2:
            x[a:b] = np.inf
        elif kind == 3:
            x = x * (1e-30 if trial < 6 else 1e18)
        elif kind == 4:
            x = np.concatenate([x[a:b], x, x[a:b]])  # partial copies around the packet
        else:
            x[a:b] = 1e3 * rng.standard_normal(b - a)  # a loud interferer
        pkt = rx.demodulate(x.astype(np.complex64))
        assert pkt is None or (not pkt.header_ok) or len(pkt.payload) == len(data)


def test_buffer_with_two_packets_and_a_lost_first_burst(ends):
    tx, rx = ends
    rng = np.random.default_rng(9)
    a, b = _payload(rng, 200), _payload(rng, 2000)
    sa, sb = tx.modulate(a, "qpsk-1/2", 10), tx.modulate(b, "qpsk-1/2", 11)
    gap = np.zeros(256, np.complex64)
    buf = np.concatenate([sa, gap, sb])
    pkt = rx.demodulate(_channel(buf, rng, 15.0, delay=500.0))
    # packet 11 has more bursts in the buffer than packet 10: it is the one returned, and located right
    assert pkt.seq == 11 and pkt.payload == b and pkt.header_errors == ["other packet"]
    assert abs(pkt.start_sample - (500 + sa.size + gap.size)) < 1.5
    assert pkt.symbols is not None and pkt.symbols.size > 100
    # lose packet 11's first preamble and header: the packet start is still inferred from the second burst,
    # and the first burst is read where the second puts it
    sb2 = sb.copy()
    sb2[: 300 * CFG.sps] = 0
    pkt = rx.demodulate(_channel(np.concatenate([gap, sb2]), rng, 15.0, delay=500.0))
    assert pkt.seq == 11 and pkt.bursts_ok == pkt.n_bursts - 1 and pkt.bursts_recovered == 1
    assert pkt.block_ok.all() and pkt.payload == b
    assert abs(pkt.start_sample - (500 + gap.size)) < 1.5


@pytest.mark.slow
def test_implementation_loss_against_ideal_synchronisation():
    """Coded BLER through the whole link (CFO 5 %, 50 ppm, Doppler rate) vs the same code and demapper on
    ideal symbols: the synchronisation costs less than 0.25 dB at BLER ~ 0.2."""
    from sagin_hil.phy.theory import parse_code, simulate_ber

    cfg = LinkConfig()
    tx, rx = PacketTransmitter(cfg), PacketReceiver(cfg)
    rng = np.random.default_rng(10)
    esn0_db, link_err, link_blocks = 1.5, 0, 0
    for seq in range(4):
        data = _payload(rng, 100 * 125)
        pkt = rx.demodulate(_channel(tx.modulate(data, "qpsk-1/2", seq), rng, esn0_db, 5e4, 50.0, 900.0, 200.0))
        link_err += int(np.count_nonzero(~pkt.block_ok))
        link_blocks += pkt.n_blocks
    ideal_hi = simulate_ber("qpsk", esn0_db - 0.25, parse_code("nr:1024:2048"), target_errors=400, max_bits=400 * 1024, rng=rng)
    # the link at 1.5 dB must do at least as well as ideal sync at 1.25 dB (binomial slack of 2 sigma)
    p = ideal_hi["bler"]
    assert link_err / link_blocks <= p + 2 * np.sqrt(p * (1 - p) / link_blocks)


# -- analog payloads (deep JSCC symbols) ------------------------------------------------------------
def _gaussian(rng, n):
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


def test_analog_header_round_trips_and_must_be_uncoded():
    h = BurstHeader(ANALOG, "1/4", 22, 123, 1, 3, 3648, 10000)
    assert h.mcs == ANALOG and h.side_len == 22
    codec = HeaderCodec()
    assert codec.decode(4.0 * codec.encode(h)) == h
    with pytest.raises(ValueError, match="uncoded"):
        BurstHeader(ANALOG, "1/2", 0, 1, 0, 1, 10, 10).pack()
    with pytest.raises(ValueError, match="0..64 side bytes"):
        BurstHeader(ANALOG, "1/4", 65, 1, 0, 1, 10, 10).pack()


def test_analog_side_information_survives_where_the_weakest_mcs_fails():
    """The side information is coded like the header (rate 1/4): at Es/N0 = -3 dB, where bpsk-1/2 fails
    (its BLER-1e-2 point is near 0 dB), every one of 50 copies of a 22-byte codec header decodes."""
    side_codec = SideInfoCodec(22)
    rng = np.random.default_rng(4)
    side = rng.integers(0, 256, 22, dtype=np.uint8).tobytes()
    sym = side_codec.encode(side)
    assert sym.size == SideInfoCodec.symbols(22) == 4 * (22 * 8 + 16)
    n0 = 10 ** 0.3
    ok = sum(side_codec.decode(4 * (sym + np.sqrt(n0 / 2) * rng.standard_normal(sym.size)) / n0) == side
             for _ in range(50))
    assert ok == 50
    with pytest.raises(HeaderError, match="side"):
        side_codec.decode(rng.normal(0, 3, sym.size))


@pytest.mark.parametrize("esn0_db", [0.0, 10.0, 20.0])
def test_analog_symbols_arrive_with_the_channel_snr_through_offsets(ends, esn0_db):
    """Equalised symbols = sent + noise of variance 1/(Es/N0): the PHY adds (almost) nothing of its own,
    through delay, carrier offset, Doppler rate and clock offset, over 4 bursts."""
    tx, rx = ends
    rng = np.random.default_rng(int(esn0_db) + 1)
    sent = _gaussian(rng, 10_000)
    x = tx.modulate_symbols(sent, seq=7, side=b"codec header")
    assert x.size == round(tx.air_time_s(sent.size, ANALOG, side_len=12) * CFG.sample_rate_hz)
    pkt = rx.demodulate(_channel(x, rng, esn0_db, cfo_hz=0.03e6, ppm=30.0, delay=500.5, rate_hz_s=500.0))
    assert pkt.mcs == ANALOG and pkt.seq == 7 and pkt.payload == b"codec header"
    assert pkt.n_bursts == AnalogPlan.make(CFG, sent.size, 12).frag_count == 4 and pkt.block_ok.all()
    assert pkt.analog.shape == sent.shape and pkt.analog.dtype == np.complex64
    # 10^4 symbols: the MSE estimate has a 1 % standard deviation; 0.3 dB leaves room for the sync's loss
    mse_db = 10 * np.log10(np.mean(np.abs(pkt.analog - sent) ** 2))
    assert mse_db == pytest.approx(-esn0_db, abs=0.3)
    assert pkt.snr_db == pytest.approx(esn0_db, abs=0.3)


def test_analog_lost_burst_leaves_zeros_and_is_counted(ends):
    """Without recover_bursts, a burst whose preamble and header are gone leaves zeros."""
    tx, rx = ends[0], PacketReceiver(dataclasses.replace(CFG, recover_bursts=False))
    rng = np.random.default_rng(5)
    sent = _gaussian(rng, 8000)
    x = tx.modulate_symbols(sent, seq=9, side=bytes(range(20)))
    x[: 300 * CFG.sps] = 0  # the first burst's preamble and header are gone
    pkt = rx.demodulate(_channel(x, rng, 20.0))
    plan = AnalogPlan.make(CFG, sent.size, 20)
    assert pkt.payload == bytes(range(20))  # from the copy in another burst
    assert list(pkt.block_ok) == [False, True, True] and pkt.bler == pytest.approx(1 / 3)
    assert not np.any(pkt.analog[plan.frag_slice(0)]) and pkt.bursts_recovered == 0
    good = plan.frag_slice(1).start
    assert np.mean(np.abs(pkt.analog[good:] - sent[good:]) ** 2) < 0.03


@pytest.mark.parametrize("ppm", [0.0, 30.0])
def test_analog_burst_without_preamble_is_read_where_the_others_put_it(ends, ppm):
    """The first burst's preamble and header are gone (a deep fade): it is read where the next burst and the
    plan put it (its timing searched over the pilots, +-1 sample of it left to the clock fit), with the
    header they imply, and its symbols arrive with the channel's SNR, through a carrier offset and a 30 ppm
    sample clock. A burst that is all gone stays zeros."""
    tx, rx = ends
    rng = np.random.default_rng(6)
    sent = _gaussian(rng, 8000)
    x = tx.modulate_symbols(sent, seq=9, side=bytes(range(20)))
    x[: 300 * CFG.sps] = 0
    pkt = rx.demodulate(_channel(x, rng, 20.0, cfo_hz=20e3, ppm=ppm, delay=900.3))
    assert pkt.bursts_ok == 2 and pkt.bursts_recovered == 1 and pkt.block_ok.all()
    assert 10 * np.log10(np.mean(np.abs(pkt.analog - sent) ** 2)) == pytest.approx(-20.0, abs=0.5)
    plan = AnalogPlan.make(CFG, sent.size, 20)
    gone = tx.modulate_symbols(sent, seq=9, side=bytes(range(20)))
    gone[: (tx.fmt.burst_len(plan.n_data(0)) + CFG.guard_symbols) * CFG.sps] = 0  # all of the first burst
    pkt = rx.demodulate(_channel(gone, rng, 20.0, cfo_hz=20e3, ppm=ppm, delay=900.3))
    assert pkt.bursts_recovered == 0 and list(pkt.block_ok) == [False, True, True]
    assert not np.any(pkt.analog[plan.frag_slice(0)])


def test_analog_bad_inputs_raise_clear_errors(ends):
    tx, _ = ends
    with pytest.raises(ValueError, match="complex"):
        tx.modulate_symbols(np.ones(10), seq=1)
    with pytest.raises(ValueError, match="finite"):
        tx.modulate_symbols(np.array([1 + 1j, np.nan], np.complex64), seq=1)
    with pytest.raises(ValueError, match="1..16777215 symbols"):
        tx.modulate_symbols(np.zeros(0, np.complex64), seq=1)
    with pytest.raises(ValueError, match="seq=70000"):
        tx.modulate_symbols(np.ones(4, np.complex64), seq=70000)
    with pytest.raises(ValueError, match="max 255"):
        AnalogPlan.make(LinkConfig(max_burst_symbols=1024), 1_000_000)
    with pytest.raises(ValueError, match="at most 64 bytes"):
        tx.modulate_symbols(np.ones(4, np.complex64), seq=1, side=bytes(65))
