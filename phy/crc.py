"""Cyclic redundancy checks on bit arrays: the TS 38.212 sec. 5.1 family (CRC24A/B/C, CRC16) and CRC8.

Bits are uint8 0/1, most significant first; the register starts at zero with no reflection and no final
XOR, and the parity bits are appended MSB first, as TS 38.212 specifies. "crc8" is the DVB-S2 CRC-8
(EN 302 307 sec. 5.1.4, g = D^8 + D^7 + D^6 + D^4 + D^2 + 1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

__all__ = ["CRC_POLYNOMIALS", "crc_attach", "crc_check", "crc_remainder"]

# name -> (length L, generator polynomial without the D^L term)
CRC_POLYNOMIALS: dict[str, tuple[int, int]] = {
    "crc24a": (24, 0x864CFB),  # D24+D23+D18+D17+D14+D11+D10+D7+D6+D5+D4+D3+D+1
    "crc24b": (24, 0x800063),  # D24+D23+D6+D5+D+1
    "crc24c": (24, 0xB2B117),  # D24+D23+D21+D20+D17+D15+D13+D12+D8+D4+D2+D+1
    "crc16": (16, 0x1021),  # D16+D12+D5+1
    "crc11": (11, 0x621),  # D11+D10+D9+D5+1
    "crc6": (6, 0x21),  # D6+D5+1
    "crc8": (8, 0xD5),  # DVB-S2 BB header
}


@njit(cache=True)
def _crc_kernel(bits, length, poly, table, out):
    # MSB first: eight input bits at a time through the byte table (when length >= 8), the rest one by one
    top = np.int64(1) << (length - 1)
    mask = (np.int64(1) << length) - 1
    for b in range(bits.shape[0]):
        reg = np.int64(0)
        row = bits[b]
        i = 0
        if length >= 8:
            for i0 in range(0, row.size - 7, 8):
                byte = np.int64(0)
                for q in range(8):
                    byte = (byte << 1) | (row[i0 + q] != 0)
                reg = ((reg << 8) & mask) ^ table[((reg >> (length - 8)) ^ byte) & 0xFF]
            i = row.size - row.size % 8
        for i in range(i, row.size):
            fb = ((reg & top) != 0) ^ (row[i] != 0)
            reg = (reg << 1) & mask
            if fb:
                reg ^= poly
        for j in range(length):
            out[b, j] = (reg >> (length - 1 - j)) & 1


@lru_cache(maxsize=None)
def _byte_table(length: int, poly: int) -> np.ndarray:
    """table[v]: the register after shifting in byte v (MSB first) from reg = 0, i.e. v << (length - 8)."""
    table = np.zeros(256, np.int64)
    if length >= 8:
        mask, top = (1 << length) - 1, 1 << (length - 1)
        for v in range(256):
            reg = v << (length - 8)
            for _ in range(8):
                reg = ((reg << 1) & mask) ^ (poly if reg & top else 0)
            table[v] = reg
    return table


def _spec(name: str) -> tuple[int, int]:
    try:
        return CRC_POLYNOMIALS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown CRC {name!r}; choose one of: {', '.join(CRC_POLYNOMIALS)}") from None


def _bits(bits: np.ndarray, min_len: int, what: str) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.ndim == 0 or arr.shape[-1] < min_len:
        raise ValueError(f"{what} must have shape [..., >= {min_len}], got {arr.shape}")
    if arr.size and not (arr.max() <= 1 if arr.dtype == np.uint8 else np.all((arr == 0) | (arr == 1))):
        raise ValueError(f"{what} must hold only 0 and 1; convert with (x != 0).astype(np.uint8)")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def crc_remainder(bits: np.ndarray, name: str) -> np.ndarray:
    """The L parity bits of `bits` uint8 [..., k] under CRC `name`: uint8 [..., L]."""
    length, poly = _spec(name)
    arr = _bits(bits, 0, "bits")
    flat = arr.reshape(-1, arr.shape[-1])
    out = np.empty((flat.shape[0], length), np.uint8)
    _crc_kernel(flat, length, poly, _byte_table(length, poly), out)
    return out.reshape(*arr.shape[:-1], length)


def crc_attach(bits: np.ndarray, name: str = "crc24a") -> np.ndarray:
    """Append the CRC parity bits: uint8 [..., k] -> uint8 [..., k + L]."""
    arr = _bits(bits, 0, "bits")
    return np.concatenate([arr, crc_remainder(arr, name)], axis=-1)


def crc_check(bits: np.ndarray, name: str = "crc24a") -> np.ndarray:
    """bool [...]: True where the block (payload followed by its L CRC bits) has a zero remainder."""
    length, _ = _spec(name)
    arr = _bits(bits, length, "bits with CRC")
    return ~crc_remainder(arr, name).any(axis=-1)
