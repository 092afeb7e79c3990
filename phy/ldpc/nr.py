"""5G NR LDPC codes (3GPP TS 38.212 sec. 5.3.2 and 5.4.2): base graphs, lifting, filler bits, rate matching.

A code block of k information bits (CRC included) is encoded with base graph BG1 (46 x 68) or BG2
(42 x 52) lifted by Z; the 2Z first systematic bits are punctured, the F = K - k filler bits (known
zeros) are not sent, and the circular buffer (redundancy version 0, no limited-buffer rate matching)
is read until exactly n bits are out, repeating from the start when n exceeds the buffer.
"""

from __future__ import annotations

from functools import lru_cache, partial
from importlib import resources

import numpy as np
import scipy.sparse as sp
from numba import njit

from sagin_hil.phy.ldpc.code import LdpcCode, QcGraph

__all__ = ["nr_code", "nr_lifting_size", "nr_base_graph", "LIFTING_SETS"]

# TS 38.212 Table 5.3.2-1: the lifting sizes Z = a * 2^j of set index iLS
LIFTING_SETS = tuple(
    tuple(a * 2**j for j in range(8) if a * 2**j <= 384) for a in (2, 3, 5, 7, 9, 11, 13, 15)
)
_SET_OF_Z = {z: i for i, zs in enumerate(LIFTING_SETS) for z in zs}
# base graph -> (rows, columns, systematic columns)
_BG_DIMS = {1: (46, 68, 22), 2: (42, 52, 10)}
FILLER_LLR = 1.0e4  # a filler bit is a known zero


@lru_cache(maxsize=None)
def _tables() -> dict[str, np.ndarray]:
    path = resources.files("sagin_hil.phy.ldpc").joinpath("tables/nr_base_graphs.npz")
    with resources.as_file(path) as p, np.load(p) as f:
        return {key: f[key] for key in f.files}


def nr_base_graph(bg: int, z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, shifts) of base graph `bg` lifted by `z`: shift = V_ij(iLS) mod z (Table 5.3.2-2/3)."""
    if bg not in _BG_DIMS:
        raise ValueError(f"base graph {bg!r} does not exist; use 1 or 2")
    if z not in _SET_OF_Z:
        raise ValueError(f"lifting size {z} is not in TS 38.212 Table 5.3.2-1; use one of {sorted(_SET_OF_Z)}")
    t = _tables()
    shifts = t[f"bg{bg}_shift"][:, _SET_OF_Z[z]].astype(np.int64) % z
    return t[f"bg{bg}_row"].astype(np.int64), t[f"bg{bg}_col"].astype(np.int64), shifts


def select_base_graph(k: int, rate: float) -> int:
    """TS 38.212 sec. 7.2.2 (applied to one code block): BG2 for short blocks or low rates."""
    if k <= 292 or (k <= 3824 and rate <= 0.67) or rate <= 0.25:
        return 2 if k <= 3840 else 1
    return 1


def nr_lifting_size(k: int, bg: int) -> int:
    """Smallest Z with Kb * Z >= k (TS 38.212 sec. 5.2.2)."""
    if bg == 1:
        kb = 22
    else:
        kb = 10 if k > 640 else 9 if k > 560 else 8 if k > 192 else 6
    return min(z for z in _SET_OF_Z if kb * z >= k)


def _lift(rows, cols, shifts, z, n_rows, n_cols) -> sp.csr_matrix:
    zz = np.arange(z)
    r = (rows[:, None] * z + zz[None, :]).ravel()
    c = (cols[:, None] * z + (zz[None, :] + shifts[:, None]) % z).ravel()
    return sp.csr_matrix((np.ones(r.size, np.uint8), (r, c)), shape=(n_rows * z, n_cols * z))


class _NrEncoder:
    """Systematic encoder using the base-graph structure: the 4 core rows, then one parity per row.

    The order in which the parity columns can be solved depends only on the base graph, so it is worked
    out once here, as a schedule of steps (column, row, shift); `_encode_kernel` then runs it on the bits."""

    def __init__(self, bg: int, z: int, rows, cols, shifts, k: int, n_rows_used: int) -> None:
        self.bg, self.z, self.k = bg, z, k
        self.m, self.n_cols, self.kb = _BG_DIMS[bg]
        kb = self.kb
        order = np.lexsort((cols, rows))
        self.rows, self.cols, self.shifts = rows[order], cols[order].astype(np.int64), shifts[order].astype(np.int64)
        self.row_ptr = np.concatenate([[0], np.cumsum(np.bincount(self.rows, minlength=self.m))]).astype(np.int64)
        entries = [list(zip(self.cols[self.rows == r].tolist(), self.shifts[self.rows == r].tolist()))
                   for r in range(self.m)]
        # summing the 4 core rows cancels parity columns kb+1..kb+3 and two of kb's three entries: the sum
        # of their systematic parts is P^s p0 for the one shift s that appears an odd number of times
        p0_shifts = [sh for r in range(4) for col, sh in entries[r] if col == kb]
        odd = [sh for sh in set(p0_shifts) if p0_shifts.count(sh) % 2 == 1]
        if len(odd) != 1:
            raise ValueError(f"base graph {bg}: unexpected core structure (parity column {kb} shifts {p0_shifts})")
        self.p0_shift = int(odd[0])
        known, steps = set(range(kb)) | {kb}, []
        while len(known) < kb + 4:  # the other core parity columns, each from a row where it is the last unknown
            progress = False
            for r in range(4):
                unknown = [(col, sh) for col, sh in entries[r] if col not in known]
                if len(unknown) == 1:
                    steps.append((unknown[0][0], r, unknown[0][1]))
                    known.add(unknown[0][0])
                    progress = True
            if not progress:
                raise ValueError(f"base graph {bg}: the core parity columns cannot be solved row by row")
        for r in range(4, n_rows_used):  # the extension rows: parity column kb + r only in row r, shift 0
            unknown = [(col, sh) for col, sh in entries[r] if col not in known]
            if unknown != [(kb + r, 0)]:
                raise ValueError(f"base graph {bg}: extension row {r} is not lower-triangular")
            steps.append((kb + r, r, 0))
            known.add(kb + r)
        self.steps = np.array(steps, dtype=np.int64).reshape(-1, 3)

    def __call__(self, u: np.ndarray, n_rows: int | None = None) -> np.ndarray:
        """Mother codewords of u [B, k]; with n_rows, only the parity of the first n_rows rows (the rest
        zero): what a rate-matched code block transmits."""
        z, kb = self.z, self.kb
        B = u.shape[0]
        c = np.zeros((B, self.n_cols, z), np.uint8)
        c.reshape(B, -1)[:, : self.k] = u  # filler bits (k .. kb z) stay zero
        steps = self.steps if n_rows is None else self.steps[: 3 + max(n_rows - 4, 0)]  # 3 core steps first
        _encode_kernel(c, kb, self.row_ptr, self.cols, self.shifts, self.p0_shift, steps)
        return c.reshape(B, -1)


@njit(cache=True)
def _xor_circ(acc, x, s):
    """acc ^= P^s x for blocks of Z bits: (P^s x)[q] = x[(q + s) mod Z]."""
    z = acc.size
    for q in range(z - s):
        acc[q] ^= x[q + s]
    for q in range(z - s, z):
        acc[q] ^= x[q + s - z]


@njit(cache=True)
def _encode_kernel(c, kb, row_ptr, cols, shifts, p0_shift, steps):
    """Fill the parity columns of c [B, columns, Z] (systematic part set) by the encoder's schedule."""
    z = c.shape[2]
    acc = np.empty(z, np.uint8)
    for b in range(c.shape[0]):
        acc[:] = 0
        for r in range(4):
            for e in range(row_ptr[r], row_ptr[r + 1]):
                if cols[e] < kb:
                    _xor_circ(acc, c[b, cols[e]], shifts[e])
        for q in range(z):  # p0 = P^-s (sum): out[(q + s) mod Z] = acc[q]
            c[b, kb, (q + p0_shift) % z] = acc[q]
        for t in range(steps.shape[0]):
            target, r, s_inv = steps[t, 0], steps[t, 1], steps[t, 2]
            acc[:] = 0
            for e in range(row_ptr[r], row_ptr[r + 1]):
                if cols[e] != target:
                    _xor_circ(acc, c[b, cols[e]], shifts[e])
            for q in range(z):
                c[b, target, (q + s_inv) % z] = acc[q]


@lru_cache(maxsize=64)
def nr_code(k: int, n: int, base_graph: int | None = None) -> LdpcCode:
    r"""A 5G NR LDPC code block with exactly `k` information bits and `n` transmitted bits.

    Parameters
    ----------
    k : int
        Information bits of the code block (CRC included), 1..8448 (BG1) or 1..3840 (BG2).
    n : int
        Rate-matched output length E (n > k); repetition of the circular buffer when n exceeds it.
    base_graph : int, optional
        1 or 2; default: the TS 38.212 rule from k and k/n.

    Output
    ------
    LdpcCode
        `H` is the lifted mother code (46Z x 68Z or 42Z x 52Z); `qc` the base graph the fast decoder uses.
    """
    if not (isinstance(k, (int, np.integer)) and isinstance(n, (int, np.integer))):
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if not 1 <= k <= 8448:
        raise ValueError(f"k={k} is outside 1..8448; segment larger blocks into code blocks (TS 38.212 5.2.2)")
    if n <= k:
        raise ValueError(f"n={n} must exceed k={k}; choose n > k for a code rate below 1")
    bg = select_base_graph(k, k / n) if base_graph is None else base_graph
    if bg not in (1, 2):
        raise ValueError(f"base_graph={base_graph!r} does not exist; use 1, 2 or None")
    if bg == 2 and k > 3840:
        raise ValueError(f"k={k} exceeds BG2's 3840 bits; use base_graph=1")
    m, n_cols, kb = _BG_DIMS[bg]
    z = nr_lifting_size(k, bg)
    K = kb * z
    rows, cols, shifts = nr_base_graph(bg, z)

    # circular buffer of the mother code without the 2Z punctured systematic bits; fillers are skipped
    ncb = (n_cols - 2) * z
    buf = np.arange(2 * z, 2 * z + ncb)
    buf = buf[(buf < k) | (buf >= K)]
    tx_index = buf[np.arange(n) % buf.size]

    # rows whose degree-1 parity column is never sent carry no information: drop them from decoding
    cols_used = int(tx_index.max()) // z + 1
    n_rows = min(m, max(4, cols_used - kb))
    keep = rows < n_rows
    order = np.lexsort((cols[keep], rows[keep]))
    r_k, c_k, s_k = rows[keep][order], cols[keep][order], shifts[keep][order]
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(r_k, minlength=n_rows))]).astype(np.int64)
    qc = QcGraph(z, row_ptr, c_k.astype(np.int64), s_k.astype(np.int64))

    H = _lift(rows, cols, shifts, z, m, n_cols)
    encoder = _NrEncoder(bg, z, rows, cols, shifts, k, m)
    return LdpcCode(
        H,
        k,
        tx_index,
        np.arange(k),
        encoder,
        name=f"nr_bg{bg}_z{z}_k{k}_n{n}",
        known_zero_index=np.arange(k, K),
        n_dec_rows=n_rows * z,
        n_dec_cols=(kb + n_rows) * z,
        qc=qc,
        encode_transmitted=partial(encoder, n_rows=n_rows),  # the parity of the rows it sends, not all m
    )
