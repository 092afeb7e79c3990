"""Bit scrambler: XOR with a length-31 Gold sequence c(n) of TS 38.211 sec. 5.2.1 seeded by c_init.

Scrambling whitens the payload (no long runs of equal bits) and is its own inverse.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["gold_sequence", "scramble"]

_NC = 1600  # TS 38.211: the first 1600 outputs are discarded


@njit(cache=True)
def _gold(c_init, length, out):
    n = length + _NC + 31
    x1 = np.zeros(n, np.uint8)
    x2 = np.zeros(n, np.uint8)
    x1[0] = 1
    for i in range(31):
        x2[i] = (c_init >> i) & 1
    for i in range(n - 31):
        x1[i + 31] = x1[i + 3] ^ x1[i]
        x2[i + 31] = x2[i + 3] ^ x2[i + 2] ^ x2[i + 1] ^ x2[i]
    for i in range(length):
        out[i] = x1[i + _NC] ^ x2[i + _NC]


def gold_sequence(seed: int, length: int) -> np.ndarray:
    """c(0..length-1) of TS 38.211 sec. 5.2.1 with c_init = seed (0 <= seed < 2^31): uint8 [length]."""
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**31:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 2^31); TS 38.211 c_init is 31 bits")
    if length < 0:
        raise ValueError(f"length={length} must be >= 0")
    out = np.empty(int(length), np.uint8)
    _gold(np.int64(seed), int(length), out)
    return out


def scramble(bits: np.ndarray, seed: int) -> np.ndarray:
    """XOR each word bits uint8 [..., n] with the Gold sequence of `seed`; scramble(scramble(b)) == b."""
    arr = np.asarray(bits)
    if arr.ndim == 0:
        raise ValueError("bits must have at least one axis [..., n]")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError("bits must hold only 0 and 1; convert with (x != 0).astype(np.uint8)")
    return arr.astype(np.uint8) ^ gold_sequence(seed, arr.shape[-1])
