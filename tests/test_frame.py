"""Burst frame: preamble properties, layout, header packing / coding, rejection of bad headers with reasons."""

import numpy as np
import pytest

from sagin_hil.phy.crc import crc_attach
from sagin_hil.phy.frame import (
    HEADER_CODED_BITS,
    HEADER_FIELD_BITS,
    BurstHeader,
    FrameFormat,
    HeaderCodec,
    HeaderError,
    pilot_symbols,
    preamble_symbols,
)

# bit offsets of the header fields (see phy/frame.py)
FIELD = {"version": (0, 2), "modulation": (2, 3), "code_family": (5, 1), "code_rate": (6, 4), "ldpc_k": (10, 14),
         "frag_index": (40, 8), "frag_count": (48, 8), "frag_len": (56, 16), "total_len": (72, 24)}  # fmt: skip
GOOD = BurstHeader("16qam", "3/4", 1024, 4242, 2, 5, 1500, 7000)


@pytest.fixture(scope="module")
def codec():
    return HeaderCodec()


def _set(bits, name, value):
    pos, width = FIELD[name]
    out = bits.copy()
    out[pos : pos + width] = (value >> np.arange(width - 1, -1, -1)) & 1
    return out


def _llr_of_bits(codec, field_bits):
    """Noiseless LLRs of a header whose (possibly invalid) fields carry a valid CRC."""
    cw = codec.code.encode(crc_attach(field_bits, "crc16"))
    return (20.0 * (1.0 - 2.0 * cw)).astype(np.float32)


def test_preamble_is_an_m_sequence_with_flat_periodic_autocorrelation():
    pre = preamble_symbols()
    assert pre.size == 256 and np.all(np.abs(pre) == 1)
    chips = pre[:255].real
    periodic = np.array([np.dot(chips, np.roll(chips, k)) for k in range(255)])
    assert periodic[0] == 255 and np.all(periodic[1:] == -1)
    aperiodic = np.abs(np.correlate(pre.real, pre.real, "full"))
    aperiodic[pre.size - 1] = 0
    assert aperiodic.max() < 0.15 * pre.size  # sidelobes well below the 256 peak


def test_pilots_are_unit_energy_and_fixed():
    p = pilot_symbols(16)
    np.testing.assert_allclose(np.abs(p), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(p, pilot_symbols(16))


@pytest.mark.parametrize("n_data", [0, 1, 383, 384, 385, 1000, 5000])
def test_layout_partitions_the_burst_and_assemble_places_symbols(n_data):
    fmt = FrameFormat(16, 384)
    data_pos, pilot_pos = fmt.layout(n_data)
    length = fmt.burst_len(n_data)
    every = np.concatenate([np.arange(256), data_pos, (pilot_pos[:, None] + np.arange(16)).ravel()])
    np.testing.assert_array_equal(np.sort(every), np.arange(length))
    data = (np.arange(n_data) + 1j).astype(np.complex64)
    burst = fmt.assemble(data)
    np.testing.assert_array_equal(burst[data_pos], data)
    np.testing.assert_array_equal(burst[:256], fmt.preamble)
    for p in pilot_pos:
        np.testing.assert_array_equal(burst[p : p + 16], fmt.pilots)
    assert pilot_pos[-1] + 16 == length  # the burst ends on a pilot block


def test_header_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        total = int(rng.integers(1, 2**24))
        count = int(rng.integers(1, 256))
        h = BurstHeader("32apsk", "9/10", int(rng.integers(25, 8449)), int(rng.integers(0, 2**16)),
                        int(rng.integers(0, count)), count, int(rng.integers(1, min(total, 65535) + 1)), total)  # fmt: skip
        bits = h.pack()
        assert bits.shape == (HEADER_FIELD_BITS,)
        assert BurstHeader.unpack(bits) == h


def test_header_field_overflow_names_the_field():
    with pytest.raises(ValueError, match="seq=70000"):
        BurstHeader("qpsk", "1/2", 1024, 70000, 0, 1, 10, 10).pack()
    with pytest.raises(ValueError, match="modulation"):
        BurstHeader("128qam", "1/2", 1024, 1, 0, 1, 10, 10).pack()


def test_header_codec_round_trip_and_noise_robustness(codec):
    sym = codec.encode(GOOD)
    assert sym.shape == (HEADER_CODED_BITS,) and set(np.unique(sym)) <= {-1.0, 1.0}
    assert codec.decode(4.0 * sym) == GOOD
    rng = np.random.default_rng(1)
    esn0_db, ok = -2.0, 0
    n0 = 10 ** (-esn0_db / 10)
    for _ in range(200):
        y = sym + np.sqrt(n0 / 2) * rng.standard_normal(sym.size)
        try:
            ok += codec.decode(4 * y / n0) == GOOD
        except HeaderError:
            pass
    # rate-1/4 BPSK at Es/N0 = -2 dB is ~2 dB above its waterfall: measured 200/200
    assert ok >= 197


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("version", 2, "version"),
        ("modulation", 7, "analog"),  # id 7 is an analog burst, which must be uncoded
        ("code_rate", 15, "code_rate"),
        ("ldpc_k", 10, "ldpc_k"),
        ("frag_index", 5, "fragment"),  # index 5 of count 5
        ("frag_count", 0, "fragment"),
        ("frag_len", 8000, "length"),  # longer than the packet (7000)
    ],
)
def test_bad_fields_are_rejected_with_their_reason(codec, field, value, reason):
    bits = _set(GOOD.pack(), field, value)
    with pytest.raises(HeaderError) as exc:
        codec.decode(_llr_of_bits(codec, bits))
    assert exc.value.reason == reason
    assert reason.split("_")[0] in str(exc.value)


def test_corrupted_or_missing_header_is_rejected(codec):
    rng = np.random.default_rng(2)
    fails = 0
    for _ in range(50):
        with pytest.raises(HeaderError) as exc:
            codec.decode(rng.normal(0, 3, HEADER_CODED_BITS).astype(np.float32))  # noise, no header
        fails += exc.value.reason == "crc"
    assert fails == 50
    flipped = -4.0 * codec.encode(GOOD)  # every bit inverted: decodes to the complement, CRC fails
    with pytest.raises(HeaderError, match="crc"):
        codec.decode(flipped)
    with pytest.raises(HeaderError) as exc:
        codec.decode(np.zeros(100, np.float32))
    assert exc.value.reason == "length"
    nan = 4.0 * codec.encode(GOOD)
    nan[:10] = np.nan  # NaNs are erasures, not crashes
    assert codec.decode(nan) == GOOD
