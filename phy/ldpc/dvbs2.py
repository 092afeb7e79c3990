"""DVB-S2 LDPC codes (ETSI EN 302 307 sec. 5.3.2, Annexes B and C): normal (64800) and short (16200) frames.

The parity-check matrix is built from the standard's address tables: information bit m of group i
(360 bits per group) enters the parity accumulators (x + (m mod 360) q) mod (n - K) for every address x
on line i; the parity part is the accumulator (staircase) p_j = p_j + p_{j-1}. K is the LDPC input
length K_ldpc (the BCH codeword), so the short-frame "1/4" code carries 3240 bits.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import scipy.sparse as sp

from sagin_hil.phy.ldpc.code import LdpcCode, QcGraph

__all__ = ["dvbs2_code", "DVBS2_RATES"]

FRAME_LENGTH = {"normal": 64800, "short": 16200}
GROUP = 360


@lru_cache(maxsize=None)
def _tables(frame: str) -> dict[str, tuple[int, list[list[int]]]]:
    text = resources.files("sagin_hil.phy.ldpc").joinpath(f"tables/dvbs2_{frame}.txt").read_text()
    tables: dict[str, tuple[int, list[list[int]]]] = {}
    rate = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("rate"):
            _, rate, k = line.split()
            tables[rate] = (int(k), [])
        else:
            tables[rate][1].append([int(v) for v in line.split()])
    return tables


def _available(frame: str) -> list[str]:
    try:
        return list(_tables(frame))
    except FileNotFoundError:
        return []


DVBS2_RATES = {frame: _available(frame) for frame in FRAME_LENGTH}


def _build(frame: str, rate: str) -> tuple[sp.csr_matrix, int]:
    n = FRAME_LENGTH[frame]
    k, rows = _tables(frame)[rate]
    m = n - k
    q = m // GROUP
    if len(rows) * GROUP != k or q * GROUP != m:
        raise AssertionError(f"corrupt DVB-S2 table {frame} {rate}: {len(rows)} lines for K={k}")
    r_idx, c_idx = [], []
    offsets = np.arange(GROUP) * q
    for i, addresses in enumerate(rows):
        cols = i * GROUP + np.arange(GROUP)
        for x in addresses:
            r_idx.append((x + offsets) % m)
            c_idx.append(cols)
    # accumulator: check j holds parity j and parity j - 1
    r_idx += [np.arange(m), np.arange(1, m)]
    c_idx += [k + np.arange(m), k + np.arange(m - 1)]
    r = np.concatenate(r_idx)
    c = np.concatenate(c_idx)
    H = sp.csr_matrix((np.ones(r.size, np.uint8), (r, c)), shape=(m, n))
    if H.max() > 1:
        raise AssertionError(f"DVB-S2 table {frame} {rate} repeats an edge")
    return H, k


def _qc_graph(frame: str, rate: str) -> QcGraph:
    """The code in quasi-cyclic form with Z = 360, for the vectorised layered decoder.

    Check c = r + q s becomes check s of base row r, parity bit p_c likewise becomes bit s of parity
    block r; address x of information group i then is a circulant of base row x mod q shifted by
    -(x div q). The accumulator edge p_{c-1} of row 0 wraps into block q - 1 with one edge missing
    (check 0 has no predecessor), marked by brk.
    """
    n = FRAME_LENGTH[frame]
    k, rows = _tables(frame)[rate]
    q = (n - k) // GROUP
    kb = k // GROUP
    entries: list[tuple[int, int, int, int]] = []  # (row, col, shift, brk)
    for i, addresses in enumerate(rows):
        for x in addresses:
            entries.append((x % q, i, (-(x // q)) % GROUP, -1))
    for r in range(q):
        entries.append((r, kb + r, 0, -1))
        entries.append((r, kb + r - 1, 0, -1) if r else (0, kb + q - 1, GROUP - 1, 0))
    entries.sort()
    arr = np.array(entries, dtype=np.int64)
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(arr[:, 0], minlength=q))]).astype(np.int64)
    s_idx, r_idx = np.meshgrid(np.arange(GROUP), np.arange(q))
    perm = np.concatenate([np.arange(k), k + (r_idx + q * s_idx).ravel()]).astype(np.int64)
    return QcGraph(GROUP, row_ptr, arr[:, 1].copy(), arr[:, 2].copy(), perm=perm, brk=arr[:, 3].copy())


@lru_cache(maxsize=32)
def dvbs2_code(rate: str, frame: str = "normal") -> LdpcCode:
    r"""The DVB-S2 LDPC code of `rate` ("1/4" ... "9/10") for a normal or short FECFRAME.

    Parameters
    ----------
    rate : str
        Nominal code rate as in EN 302 307 Table 5a/5b ("9/10" exists for normal frames only).
    frame : str
        "normal" (n = 64800) or "short" (n = 16200).

    Output
    ------
    LdpcCode
        k = K_ldpc information bits first, then n - K parity bits; no puncturing.
    """
    if frame not in FRAME_LENGTH:
        raise ValueError(f"unknown DVB-S2 frame {frame!r}; use 'normal' or 'short'")
    rates = DVBS2_RATES[frame]
    if rate not in rates:
        raise ValueError(f"DVB-S2 {frame} frames have no code rate {rate!r}; choose one of: {', '.join(rates)}")
    H, k = _build(frame, rate)
    n = H.shape[1]
    H_info = H[:, :k].tocsr()

    def encode(u: np.ndarray) -> np.ndarray:
        s = (H_info @ u.T.astype(np.int32)) % 2  # [m, B] accumulator inputs
        parity = np.bitwise_xor.accumulate(s.astype(np.uint8), axis=0).T
        return np.ascontiguousarray(np.concatenate([u, parity], axis=1))

    return LdpcCode(
        H, k, np.arange(n), np.arange(k), encode, name=f"dvbs2_{frame}_{rate}", qc=_qc_graph(frame, rate)
    )
