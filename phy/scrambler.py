"""Bit scrambler: XOR with a length-31 Gold sequence c(n) of TS 38.211 sec. 5.2.1 seeded by c_init.

Scrambling whitens the payload (no long runs of equal bits) and is its own inverse.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

__all__ = ["gold_sequence", "gold_sequences", "descramble_llr", "scramble"]

_NC = 1600  # TS 38.211: the first 1600 outputs are discarded


def _x2_jump_columns() -> np.ndarray:
    """Column i: the x2 register (bit j = x2(n + j)) 1600 steps after the register e_i. x2's recursion is
    linear over GF(2), so the register after the discarded outputs is the XOR of the columns of the seed's
    set bits: 31 XORs instead of 1600 steps per seed."""
    cols = np.zeros(31, np.int64)
    for i in range(31):
        reg = 1 << i
        for _ in range(_NC):
            fb = (reg ^ (reg >> 1) ^ (reg >> 2) ^ (reg >> 3)) & 1  # x2(n+31) = x2(n+3)+x2(n+2)+x2(n+1)+x2(n)
            reg = (reg >> 1) | (fb << 30)
        cols[i] = reg
    return cols


@lru_cache(maxsize=8)
def _x1_after_discard(length: int) -> np.ndarray:
    """x1(1600 + n), n < length: the same for every seed (x1 starts from 1, 0, ..., 0)."""
    reg = 1
    out = np.empty(length, np.uint8)
    for n in range(_NC + length):
        if n >= _NC:
            out[n - _NC] = reg & 1
        fb = (reg ^ (reg >> 3)) & 1  # x1(n+31) = x1(n+3) + x1(n)
        reg = (reg >> 1) | (fb << 30)
    return out


_X2_JUMP = _x2_jump_columns()


@njit(cache=True)
def _x2_fill(c_init, jump, x2):
    """x2(1600 + n) for n < x2.size - 31 (and 31 more) of one seed: jumped to, then the recursion."""
    reg = np.int64(0)
    for i in range(31):
        if (c_init >> i) & 1:
            reg ^= jump[i]
    for i in range(31):
        x2[i] = (reg >> i) & 1
    for i in range(x2.size - 31):  # each bit depends on bits 28..31 back: the loop pipelines
        x2[i + 31] = x2[i + 3] ^ x2[i + 2] ^ x2[i + 1] ^ x2[i]


@njit(cache=True)
def _gold(c_init, x1, jump, out):
    """out[b] = the Gold sequence of c_init[b] (out [B, n])."""
    n = out.shape[1]
    x2 = np.empty(n + 31, np.uint8)
    for b in range(out.shape[0]):
        _x2_fill(c_init[b], jump, x2)
        for i in range(n):
            out[b, i] = x1[i] ^ x2[i]


@njit(cache=True)
def _flip_llr(llr, c_init, x1, jump, out):
    """out[b] = llr[b] with the sign flipped where the Gold sequence of c_init[b] is 1."""
    n = out.shape[1]
    x2 = np.empty(n + 31, np.uint8)
    for b in range(out.shape[0]):
        _x2_fill(c_init[b], jump, x2)
        for i in range(n):
            out[b, i] = -llr[b, i] if x1[i] ^ x2[i] else llr[b, i]


def _seeds_and_x1(seeds, length: int) -> tuple[np.ndarray, np.ndarray]:
    c_init = np.asarray(seeds, dtype=np.int64).ravel()
    if c_init.size and (c_init.min() < 0 or c_init.max() >= 2**31):
        raise ValueError(f"seeds must lie in [0, 2^31) (TS 38.211 c_init is 31 bits), got {seeds!r}")
    if length < 0:
        raise ValueError(f"length={length} must be >= 0")
    return c_init, _x1_after_discard(max(1024, 1 << (int(length) - 1).bit_length()))[: int(length)]  # one per 2^k


def gold_sequences(seeds, length: int) -> np.ndarray:
    """c(0..length-1) of TS 38.211 sec. 5.2.1 for each c_init in seeds (0 <= c_init < 2^31): uint8
    [len(seeds), length]; one call for all the code blocks of a packet."""
    c_init, x1 = _seeds_and_x1(seeds, length)
    out = np.empty((c_init.size, int(length)), np.uint8)
    _gold(c_init, x1, _X2_JUMP, out)
    return out


def descramble_llr(llr: np.ndarray, seeds) -> np.ndarray:
    """Undo the scrambling on soft bits: llr float32 [len(seeds), n] with the sign flipped where each row's
    Gold sequence (seeds[b]) is 1, i.e. the LLRs of the unscrambled bits (a new array)."""
    llr = np.ascontiguousarray(llr, dtype=np.float32)
    c_init, x1 = _seeds_and_x1(seeds, llr.shape[-1])
    if llr.ndim != 2 or llr.shape[0] != c_init.size:
        raise ValueError(f"llr must be [len(seeds) = {c_init.size}, n], got shape {llr.shape}")
    out = np.empty_like(llr)
    _flip_llr(llr, c_init, x1, _X2_JUMP, out)
    return out


def gold_sequence(seed: int, length: int) -> np.ndarray:
    """c(0..length-1) of TS 38.211 sec. 5.2.1 with c_init = seed (0 <= seed < 2^31): uint8 [length]."""
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**31:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 2^31); TS 38.211 c_init is 31 bits")
    return gold_sequences([seed], length)[0]


def scramble(bits: np.ndarray, seed: int) -> np.ndarray:
    """XOR each word bits uint8 [..., n] with the Gold sequence of `seed`; scramble(scramble(b)) == b."""
    arr = np.asarray(bits)
    if arr.ndim == 0:
        raise ValueError("bits must have at least one axis [..., n]")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError("bits must hold only 0 and 1; convert with (x != 0).astype(np.uint8)")
    return arr.astype(np.uint8) ^ gold_sequence(seed, arr.shape[-1])
