"""Streaming reception: chunked == one-shot, bursts across chunk boundaries found once, lost bursts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sagin_hil.phy.link import LinkConfig, PacketReceiver, PacketTransmitter
from sagin_hil.phy.stream import StreamReceiver, fir_range

CFG = LinkConfig(max_burst_symbols=4096)  # short bursts: a packet spans several, many boundaries to straddle


@pytest.fixture(scope="module")
def stream():
    """Four packets (a fragmented one, 16QAM, analog with side information, 64QAM), gaps, CFO, noise."""
    tx = PacketTransmitter(CFG)
    rng = np.random.default_rng(3)
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (3000, 500, 1200)]
    analog = ((rng.normal(size=3000) + 1j * rng.normal(size=3000)) / np.sqrt(2)).astype(np.complex64)
    parts = [np.zeros(3000, np.complex64), tx.modulate(payloads[0], "qpsk-1/2", 1), np.zeros(777, np.complex64),
             tx.modulate(payloads[1], "16qam-3/4", 2), np.zeros(5000, np.complex64),
             tx.modulate_symbols(analog, 3, side=b"hello"), np.zeros(1000, np.complex64),
             tx.modulate(payloads[2], "64qam-3/4", 4), np.zeros(2000, np.complex64)]
    x = np.concatenate(parts)
    x = x * np.exp(2j * np.pi * 0.002 * np.arange(x.size))
    y = (x + 0.03 * (rng.normal(size=x.size) + 1j * rng.normal(size=x.size))).astype(np.complex64)
    return y, payloads, analog


def receive(y: np.ndarray, sizes, cfg: LinkConfig = CFG) -> list:
    rx, out, a = StreamReceiver(cfg), [], 0
    for n in sizes:
        out += rx.feed(y[a : a + n])
        a += n
    return out + rx.feed(y[a:]) + rx.flush()


def assert_same_packet(a, b):
    for name in a.__dataclass_fields__:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, np.ndarray):
            assert np.array_equal(va, vb), name
        elif isinstance(va, float) and np.isnan(va):
            assert np.isnan(vb), name
        else:
            assert va == vb, name


def test_one_call_decodes_every_packet(stream):
    y, payloads, analog = stream
    packets = receive(y, [])
    assert [(p.mcs, p.seq) for p in packets] == [("qpsk-1/2", 1), ("16qam-3/4", 2), ("analog", 3), ("64qam-3/4", 4)]
    assert packets[0].n_bursts == packets[0].bursts_ok > 1  # the fragmented packet came whole
    assert [packets[i].payload for i in (0, 1, 3)] == payloads
    assert packets[2].payload == b"hello" and np.abs(packets[2].analog - analog).max() < 0.3
    assert packets[0].start_sample == 3000  # counted from the first sample fed


@pytest.mark.parametrize("seed", [0, 1])
def test_chunked_reception_is_one_shot_reception_bit_for_bit(stream, seed):
    y, _, _ = stream
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30000, 400)
    sizes = sizes[np.cumsum(sizes) < y.size]  # random cuts, some inside preambles and headers
    one, chunked = receive(y, []), receive(y, sizes)
    assert len(chunked) == len(one) == 4  # no burst found twice, none missed
    for a, b in zip(one, chunked):
        assert_same_packet(a, b)


def test_tiny_chunks_and_empty_ones(stream):
    y, _, _ = stream
    head = y[:60000]  # the first packet's first bursts, fed 997 samples at a time with empty chunks between
    sizes = [997, 0] * (head.size // 997)
    one, chunked = receive(head, []), receive(head, sizes)
    assert len(one) == len(chunked) >= 1
    for a, b in zip(one, chunked):
        assert_same_packet(a, b)


def test_packets_equal_what_the_one_shot_packet_receiver_decodes(stream):
    y, payloads, _ = stream
    first = receive(y, [])[0]
    n_first = 3000 + PacketTransmitter(CFG).modulate(payloads[0], "qpsk-1/2", 1).size
    ref = PacketReceiver(CFG).demodulate(y[:n_first])
    assert ref.payload == first.payload == payloads[0] and np.array_equal(ref.block_ok, first.block_ok)
    assert ref.start_sample == first.start_sample and abs(ref.snr_db - first.snr_db) < 0.05


@pytest.mark.parametrize("recover", [True, False])
def test_a_lost_burst_is_read_where_the_others_put_it_or_closes_its_packet(stream, recover):
    """The second burst's preamble is wiped: it is read where the packet's other bursts put it, with the
    header they imply, and every block decodes; without recover_bursts its blocks are lost. Either way the
    next packet is kept."""
    y, payloads, _ = stream
    y = y.copy()
    tx = PacketTransmitter(CFG)
    plan = tx.plan(len(payloads[0]), "qpsk-1/2")
    second = 3000 + (tx.fmt.burst_len(plan.n_data(0)) + CFG.guard_symbols) * CFG.sps
    y[second : second + 1100] = 0  # wipe the preamble of the first packet's second burst
    cfg = dataclasses.replace(CFG, recover_bursts=recover)
    packets = receive(y, [8192] * (y.size // 8192), cfg)
    assert packets[0].seq == 1 and packets[0].bursts_ok == packets[0].n_bursts - 1
    assert packets[0].bursts_recovered == int(recover) and packets[1].payload == payloads[1]
    assert packets[0].block_ok.all() == recover and (packets[0].payload == payloads[0]) == recover
    one_shot = PacketReceiver(cfg).demodulate(y[: 3000 + tx.modulate(payloads[0], "qpsk-1/2", 1).size + 777])
    assert one_shot.bursts_recovered == int(recover) and one_shot.block_ok.all() == recover
    assert_same_packet(packets[0], receive(y, [1000, 20000, 777] * (y.size // 21777), cfg)[0])  # however cut


def test_a_packets_lost_first_burst_is_read_from_the_samples_the_stream_kept(stream):
    """The first burst of the first packet has no preamble: the stream has moved on by a whole burst when the
    second burst tells where it was, and reads it from the samples it kept, however the stream was cut."""
    y, payloads, _ = stream
    y = y.copy()
    y[3000 : 3000 + 1100] = 0
    for sizes in ([8192] * (y.size // 8192), [1000, 20000, 777] * (y.size // 21777), [y.size]):
        first = receive(y, sizes)[0]
        assert first.seq == 1 and first.bursts_recovered == 1 and first.payload == payloads[0]


def test_streaming_fir_is_the_causal_convolution_whatever_the_cut():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500) + 1j * rng.normal(size=500)
    taps = rng.normal(size=33)
    ref = np.convolve(x, taps)[:500]
    out = np.zeros(500, np.complex128)
    for a, b in [(0, 7), (7, 200), (200, 201), (201, 500)]:
        fir_range(x, taps, a, b, out)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    again = np.zeros(500, np.complex128)
    fir_range(x, taps, 0, 500, again)
    assert np.array_equal(out, again)  # bit for bit: each sample sums its taps in one order


def test_nan_and_inf_samples_count_as_silence_and_lose_nothing(stream):
    y, payloads, _ = stream
    y = y.copy()
    y[100:140] = np.nan  # garbage in the gap before the first packet: NaN and inf parts
    y[200:210] = complex(np.inf, 0.5)
    y[300] = complex(0.2, -np.inf)
    clean = receive(stream[0], [8192] * (y.size // 8192))
    packets = receive(y, [8192] * (y.size // 8192))
    assert [p.payload for p in packets] == [p.payload for p in clean]
    assert [p.payload for p in packets if p.mcs != "analog"] == payloads
    rx = StreamReceiver(CFG)  # a real-valued chunk is taken as I only
    assert rx.feed(np.zeros(5000)) == [] and rx.samples_in == 5000
