"""An LDPC code: parity-check matrix, systematic encoder and the map from mother code to transmitted bits.

`LdpcCode` is what the decoder consumes. The 5G NR and DVB-S2 families (nr.py, dvbs2.py) build it
with their own fast encoders; any other parity-check matrix (an alist file, a pyldpc matrix) gets a
systematic encoder from Gaussian elimination over GF(2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numba import njit

__all__ = ["LdpcCode", "QcGraph", "code_from_parity_matrix", "code_from_alist", "check_bits"]


@dataclass(frozen=True)
class QcGraph:
    """Quasi-cyclic form of the decoding graph: base rows in CSR (row_ptr, cols, shifts), lifting size Z.

    Check z of base row r is connected to variable cols[e]*Z + (z + shifts[e]) mod Z of the QC order.
    perm (optional) maps QC positions to mother-code positions (DVB-S2 permutes its parity bits into
    QC order); brk[e] >= 0 names the one check of circulant e that has no edge; dup[e] marks an edge
    whose base column already appeared earlier in its row. Both are filled in when not given.
    """

    Z: int
    row_ptr: np.ndarray
    cols: np.ndarray
    shifts: np.ndarray
    perm: np.ndarray | None = None
    brk: np.ndarray | None = None
    dup: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_e = self.cols.size
        if self.brk is None:
            object.__setattr__(self, "brk", np.full(n_e, -1, np.int64))
        if self.dup is None:
            dup = np.zeros(n_e, np.uint8)
            for r in range(self.row_ptr.size - 1):
                seen: set[int] = set()
                for e in range(self.row_ptr[r], self.row_ptr[r + 1]):
                    dup[e] = self.cols[e] in seen
                    seen.add(int(self.cols[e]))
            object.__setattr__(self, "dup", dup)


def check_bits(bits: np.ndarray, length: int, what: str) -> np.ndarray:
    """Bits as uint8 [..., length]; raises ValueError naming the bad shape or values."""
    arr = np.asarray(bits)
    if arr.ndim == 0 or arr.shape[-1] != length:
        raise ValueError(f"{what} must have shape [..., {length}], got {arr.shape}; pass {length} bits per word")
    if arr.dtype != np.uint8:
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{what} must hold only 0 and 1; convert with (x != 0).astype(np.uint8)")
        arr = arr.astype(np.uint8)
    elif arr.size and arr.max() > 1:
        raise ValueError(f"{what} must hold only 0 and 1, found {int(arr.max())}")
    return arr


class LdpcCode:
    r"""A binary LDPC code with a systematic encoder.

    Parameters
    ----------
    H : scipy.sparse matrix [m, N]
        Parity-check matrix of the mother code (c H^T = 0 for every mother codeword c).
    k : int
        Information bits per codeword.
    tx_index : int array [n]
        Mother-code position of each transmitted bit (repeats allowed; untransmitted bits are punctured).
    info_index : int array [k]
        Mother-code positions of the information bits.
    encode_mother : callable
        uint8 [..., k] -> uint8 [..., N], the systematic mother encoder.
    name : str
    known_zero_index : int array, optional
        Mother positions known to be 0 (filler bits): the decoder gives them a large positive LLR.
    n_dec_rows, n_dec_cols : int, optional
        The decoder may use only H[:n_dec_rows, :n_dec_cols] (rows that touch only untransmitted
        degree-1 parity bits carry no information); the dropped columns must not touch kept rows.
    qc : QcGraph, optional
        Quasi-cyclic description of that decoding graph, for the vectorised kernel.
    encode_transmitted : callable, optional
        Like encode_mother but only right at tx_index (it may skip parity that is never sent); `encode`
        uses it. Default: encode_mother.

    Attributes
    ----------
    k, n, rate, name, H
    """

    def __init__(
        self,
        H: sp.spmatrix,
        k: int,
        tx_index: np.ndarray,
        info_index: np.ndarray,
        encode_mother: Callable[[np.ndarray], np.ndarray],
        name: str,
        known_zero_index: np.ndarray | None = None,
        n_dec_rows: int | None = None,
        n_dec_cols: int | None = None,
        qc: QcGraph | None = None,
        encode_transmitted: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.H = sp.csr_matrix(H, dtype=np.uint8)
        self.k = int(k)
        self.tx_index = np.ascontiguousarray(tx_index, dtype=np.int64)
        self.n = int(self.tx_index.size)
        self.info_index = np.ascontiguousarray(info_index, dtype=np.int64)
        self.known_zero_index = np.asarray([] if known_zero_index is None else known_zero_index, np.int64)
        self.name = name
        self._encode_mother = encode_mother
        self._encode_transmitted = encode_transmitted or encode_mother
        self.n_dec_rows = self.H.shape[0] if n_dec_rows is None else int(n_dec_rows)
        self.n_dec_cols = self.H.shape[1] if n_dec_cols is None else int(n_dec_cols)
        self.qc = qc
        H_dec = self.H[: self.n_dec_rows, : self.n_dec_cols].tocsr()
        H_dec.sort_indices()
        self.dec_row_ptr = H_dec.indptr.astype(np.int64)
        self.dec_var_idx = H_dec.indices.astype(np.int64)
        if self.tx_index.size and self.tx_index.max() >= self.n_dec_cols:
            raise ValueError("a transmitted bit lies outside the decoding graph")

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def n_mother(self) -> int:
        return self.H.shape[1]

    def __repr__(self) -> str:
        return f"LdpcCode({self.name!r}, k={self.k}, n={self.n}, rate={self.rate:.4f})"

    def encode_mother(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [..., k] -> the mother codeword uint8 [..., N] (H c = 0)."""
        bits = check_bits(bits, self.k, "information bits")
        shape = bits.shape[:-1]
        cw = self._encode_mother(bits.reshape(-1, self.k))
        return cw.reshape(*shape, self.n_mother)

    def encode(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [..., k] -> the transmitted codeword uint8 [..., n]."""
        bits = check_bits(bits, self.k, "information bits")
        cw = self._encode_transmitted(bits.reshape(-1, self.k))
        return np.ascontiguousarray(cw[:, self.tx_index]).reshape(*bits.shape[:-1], self.n)

    def syndrome_ok(self, mother_cw: np.ndarray) -> np.ndarray:
        """bool [...]: H c = 0 for mother codewords uint8 [..., N]."""
        c = np.asarray(mother_cw).reshape(-1, self.n_mother).astype(np.int64)
        s = (self.H @ c.T) % 2
        return (s == 0).all(axis=0).reshape(np.asarray(mother_cw).shape[:-1])


@njit(cache=True)
def _gf2_rref(A):
    """In-place reduced row echelon form of a uint8 matrix over GF(2); returns the pivot columns."""
    m, n = A.shape
    pivots = np.empty(min(m, n), np.int64)
    r = 0
    for c in range(n):
        if r == m:
            break
        p = -1
        for i in range(r, m):
            if A[i, c]:
                p = i
                break
        if p < 0:
            continue
        if p != r:
            for j in range(n):
                A[r, j], A[p, j] = A[p, j], A[r, j]
        for i in range(m):
            if i != r and A[i, c]:
                for j in range(c, n):
                    A[i, j] ^= A[r, j]
        pivots[r] = c
        r += 1
    return pivots[:r]


def _as_sparse_binary(H) -> sp.csr_matrix:
    Hs = sp.csr_matrix(H)
    if Hs.ndim != 2 or Hs.shape[0] == 0 or Hs.shape[1] == 0:
        raise ValueError(f"a parity-check matrix must be 2-D and non-empty, got shape {Hs.shape}")
    data = Hs.data
    if not np.all((data == 0) | (data == 1)):
        raise ValueError("a parity-check matrix must hold only 0 and 1 (GF(2)); reduce it mod 2 first")
    Hs.eliminate_zeros()
    return Hs.astype(np.uint8)


def code_from_parity_matrix(H, name: str | None = None) -> LdpcCode:
    """An LdpcCode from any binary parity-check matrix (dense or scipy.sparse, [m, n]).

    Dependent rows are allowed: k = n - rank(H). The systematic encoder places the information bits on
    the non-pivot columns of H's row echelon form; encoding is a dense GF(2) product (fine up to a few
    thousand bits).
    """
    Hs = _as_sparse_binary(H)
    m, n = Hs.shape
    A = Hs.toarray().astype(np.uint8)
    pivots = _gf2_rref(A)
    rank = pivots.size
    info = np.setdiff1d(np.arange(n), pivots)
    k = n - rank
    if k == 0:
        raise ValueError(f"H of shape {Hs.shape} has full column rank: the code holds only the zero word")
    # parity bit on pivot column pivots[i] = sum_j A[i, info[j]] * u_j (mod 2)
    P = np.ascontiguousarray(A[:rank][:, info].astype(np.float32))

    def encode(u: np.ndarray) -> np.ndarray:
        cw = np.empty((u.shape[0], n), np.uint8)
        cw[:, info] = u
        cw[:, pivots] = (u.astype(np.float32) @ P.T).astype(np.int64) % 2
        return cw

    return LdpcCode(Hs, k, np.arange(n), info, encode, name or f"custom_n{n}_k{k}")


def code_from_alist(source: str | Path, name: str | None = None) -> LdpcCode:
    """An LdpcCode from an alist file (MacKay's format), given as a path or as the file's text."""
    text = str(source)
    if "\n" not in text:
        path = Path(text)
        if not path.exists():
            raise ValueError(f"alist file {text!r} not found; pass a path or the alist text itself")
        text = path.read_text()
        name = name or path.stem
    try:
        nums = [int(t) for t in text.split()]
        n, m, max_cw, max_rw = nums[:4]
        col_w = nums[4 : 4 + n]
        row_w = nums[4 + n : 4 + n + m]
        # some writers pad each list with zeros up to the maximum weight, others do not
        padded = len(nums) >= 4 + n + m + n * max_cw + m * max_rw and sum(col_w) < n * max_cw
        pos = 4 + n + m
        rows, cols = [], []
        for j in range(n):
            step = max_cw if padded else col_w[j]
            for i in nums[pos : pos + step]:
                if i > 0:
                    rows.append(i - 1)
                    cols.append(j)
            pos += step
        if len(rows) != sum(col_w) or sum(row_w) != len(rows) or (rows and max(rows) >= m):
            raise ValueError("weights and lists disagree")
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a valid alist text ({exc}); expected 'n m / max weights / weights / lists'") from None
    H = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(m, n))
    return code_from_parity_matrix(H, name=name or f"alist_n{n}_m{m}")


def write_alist(H, path: str | Path) -> None:
    """Write a binary parity-check matrix as an alist file (1-based, zero padded)."""
    Hs = sp.csc_matrix(_as_sparse_binary(H))
    Hr = Hs.tocsr()
    m, n = Hs.shape
    cw, rw = np.diff(Hs.indptr), np.diff(Hr.indptr)
    lines = [f"{n} {m}", f"{cw.max()} {rw.max()}", " ".join(map(str, cw)), " ".join(map(str, rw))]
    for j in range(n):
        idx = list(Hs.indices[Hs.indptr[j] : Hs.indptr[j + 1]] + 1)
        lines.append(" ".join(map(str, idx + [0] * (cw.max() - len(idx)))))
    for i in range(m):
        idx = list(Hr.indices[Hr.indptr[i] : Hr.indptr[i + 1]] + 1)
        lines.append(" ".join(map(str, idx + [0] * (rw.max() - len(idx)))))
    Path(path).write_text("\n".join(lines) + "\n")
