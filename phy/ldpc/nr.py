"""5G NR LDPC codes (3GPP TS 38.212 sec. 5.3.2 and 5.4.2): base graphs, lifting, filler bits, rate matching.

A code block of k information bits (CRC included) is encoded with base graph BG1 (46 x 68) or BG2
(42 x 52) lifted by Z; the 2Z first systematic bits are punctured, the F = K - k filler bits (known
zeros) are not sent, and the circular buffer (redundancy version 0, no limited-buffer rate matching)
is read until exactly n bits are out, repeating from the start when n exceeds the buffer.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import scipy.sparse as sp

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


def _circ(x: np.ndarray, s: int) -> np.ndarray:
    """P^s x for a block x [..., Z]: (P^s x)[z] = x[(z + s) mod Z]."""
    return np.roll(x, -s, axis=-1)


class _NrEncoder:
    """Systematic encoder using the base-graph structure: the 4 core rows, then one parity per row."""

    def __init__(self, bg: int, z: int, rows, cols, shifts, k: int, n_rows_used: int) -> None:
        self.bg, self.z, self.k = bg, z, k
        self.m, self.n_cols, self.kb = _BG_DIMS[bg]
        self.n_rows_used = n_rows_used
        self.entries = [
            [(int(c), int(s)) for c, s in zip(cols[rows == r], shifts[rows == r], strict=True)] for r in range(self.m)
        ]

    def __call__(self, u: np.ndarray) -> np.ndarray:
        z, kb = self.z, self.kb
        B = u.shape[0]
        c = np.zeros((B, self.n_cols, z), np.uint8)
        info = np.zeros((B, kb * z), np.uint8)
        info[:, : self.k] = u  # filler bits are zeros
        c[:, :kb] = info.reshape(B, kb, z)

        def row_sum(r: int, known: set[int]) -> np.ndarray:
            acc = np.zeros((B, z), np.uint8)
            for col, s in self.entries[r]:
                if col in known:
                    acc ^= _circ(c[:, col], s)
            return acc

        systematic = set(range(kb))
        lam = [row_sum(r, systematic) for r in range(4)]
        # summing the 4 core rows cancels parity columns kb+1..kb+3 and two of kb's three entries
        p0_shifts = [s for r in range(4) for col, s in self.entries[r] if col == kb]
        odd = [s for s in set(p0_shifts) if p0_shifts.count(s) % 2 == 1]
        assert len(odd) == 1, "unexpected core structure"
        total = lam[0] ^ lam[1] ^ lam[2] ^ lam[3]
        c[:, kb] = np.roll(total, odd[0], axis=-1)  # invert P^s
        known = systematic | {kb}
        while len(known) < kb + 4:
            for r in range(4):
                unknown = [(col, s) for col, s in self.entries[r] if col not in known]
                if len(unknown) == 1:
                    col, s = unknown[0]
                    c[:, col] = np.roll(row_sum(r, known), s, axis=-1)
                    known.add(col)
        for r in range(4, self.n_rows_used):
            # the extension rows: parity column kb + r appears only in row r, with shift 0
            c[:, kb + r] = row_sum(r, known)
            known.add(kb + r)
        return c.reshape(B, -1)


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
    )
