"""CRCs: known-answer values (the CRC catalogue's check of "123456789"), error detection, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sagin_hil.phy.crc import CRC_POLYNOMIALS, crc_attach, crc_check, crc_remainder

ASCII_123456789 = np.unpackbits(np.frombuffer(b"123456789", np.uint8))


def as_int(bits: np.ndarray) -> int:
    return int("".join(map(str, bits)), 2)


@pytest.mark.parametrize(
    "name,check",
    [("crc24a", 0xCDE703), ("crc24b", 0x23EF52), ("crc16", 0x31C3), ("crc8", 0xBC)],
)
def test_catalogue_check_values(name, check):
    # CRC-24/LTE-A, CRC-24/LTE-B, CRC-16/XMODEM, CRC-8/DVB-S2: init 0, no reflection, no final XOR
    assert as_int(crc_remainder(ASCII_123456789, name)) == check


@pytest.mark.parametrize("name", sorted(CRC_POLYNOMIALS))
def test_every_single_bit_error_is_detected(name):
    rng = np.random.default_rng(0)
    block = crc_attach(rng.integers(0, 2, 200, dtype=np.uint8), name)
    assert crc_check(block, name)
    flips = np.repeat(block[None], block.size, axis=0)
    flips[np.arange(block.size), np.arange(block.size)] ^= 1
    assert not crc_check(flips, name).any()


@pytest.mark.parametrize("name", ["crc24a", "crc24b", "crc24c", "crc16"])
def test_all_burst_errors_up_to_length_l_are_detected(name):
    length, _ = CRC_POLYNOMIALS[name]
    rng = np.random.default_rng(1)
    block = crc_attach(rng.integers(0, 2, 120, dtype=np.uint8), name)
    bursts = []
    for start in range(0, block.size - length, 7):
        pattern = rng.integers(0, 2, length, dtype=np.uint8)
        pattern[0] = pattern[-1] = 1
        b = block.copy()
        b[start : start + length] ^= pattern
        bursts.append(b)
    assert not crc_check(np.array(bursts), name).any()


@pytest.mark.parametrize("name", sorted(CRC_POLYNOMIALS))
def test_byte_table_path_is_the_polynomial_division_at_any_length(name):
    # eight bits at a time through a table, the tail bit by bit: the same remainder as long division
    length, poly = CRC_POLYNOMIALS[name]
    rng = np.random.default_rng(4)
    for k in (1, 7, 8, 9, 63, 200, 1001):
        bits = rng.integers(0, 2, k, dtype=np.uint8)
        reg = 0
        for b in bits:
            top = (reg >> (length - 1)) & 1
            reg = ((reg << 1) & ((1 << length) - 1)) ^ (poly if top ^ b else 0)
        assert as_int(crc_remainder(bits, name)) == reg, (name, k)


def test_crc_is_linear_and_batched():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 2, (2, 3, 64), dtype=np.uint8)
    ra, rb, rab = crc_remainder(a, "crc24c"), crc_remainder(b, "crc24c"), crc_remainder(a ^ b, "crc24c")
    assert ra.shape == (3, 24) and np.array_equal(ra ^ rb, rab)
    assert crc_attach(a, "crc16").shape == (3, 80) and crc_check(crc_attach(a, "crc16"), "crc16").all()


@pytest.mark.skipif(importlib.util.find_spec("sionna") is None, reason="sionna not installed")
@pytest.mark.parametrize("name,sionna_name", [("crc24a", "24A"), ("crc24b", "24B"), ("crc24c", "24C"), ("crc16", "16")])
def test_same_parity_as_sionna(name, sionna_name):
    import torch
    from sionna.phy.fec.crc import CRCEncoder

    bits = np.random.default_rng(3).integers(0, 2, (4, 100), dtype=np.uint8)
    ref = CRCEncoder(f"CRC{sionna_name}")(torch.tensor(bits, dtype=torch.float32)).numpy().astype(np.uint8)
    assert np.array_equal(crc_attach(bits, name), ref)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown CRC 'crc32'"):
        crc_attach(np.zeros(8, np.uint8), "crc32")
    with pytest.raises(ValueError, match="only 0 and 1"):
        crc_attach(np.array([0, 1, 2]), "crc16")
    with pytest.raises(ValueError, match=">= 24"):
        crc_check(np.zeros(10, np.uint8), "crc24a")
