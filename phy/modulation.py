"""Gray-mapped constellations with hard mapping and soft (log-MAP or max-log) demapping.

PSK and QAM follow 3GPP TS 38.211 sec. 5.1 / DVB-S2 (ETSI EN 302 307 sec. 5.4) labelling; 16APSK (4+12)
and 32APSK (4+12+16) use the DVB-S2 bit mapping and ring-radius ratios, which depend on the code rate.
Every constellation is normalised to unit average energy (Es = 1).
"""

from __future__ import annotations

import math

from fractions import Fraction

import numba
import numpy as np

__all__ = ["Constellation", "MODULATIONS", "APSK_RING_RATIOS", "nearest_point_index"]

MODULATIONS = ("bpsk", "qpsk", "8psk", "16qam", "64qam", "16apsk", "32apsk")

# DVB-S2 ring ratios (EN 302 307 Tables 9 and 10): gamma = R2/R1 (16APSK), (R2/R1, R3/R1) (32APSK).
APSK_RING_RATIOS = {
    "16apsk": {"2/3": (3.15,), "3/4": (2.85,), "4/5": (2.75,), "5/6": (2.70,), "8/9": (2.60,), "9/10": (2.57,)},
    "32apsk": {"3/4": (2.84, 5.27), "4/5": (2.72, 4.87), "5/6": (2.64, 4.64), "8/9": (2.54, 4.33), "9/10": (2.53, 4.30)},
}
_APSK_DEFAULT_RATE = {"16apsk": "3/4", "32apsk": "3/4"}

# DVB-S2 labels as (ring, angle index) per label value; angle = index * step + offset.
_8PSK_K = (0, 7, 3, 4, 1, 6, 2, 5)  # label -> k, angle k*pi/4 + pi/4
_16APSK = [(1, k) for k in (0, 9, 3, 6, 11, 10, 4, 5, 1, 8, 2, 7)] + [(0, k) for k in (0, 3, 1, 2)]
_32APSK = (
    [(1, k) for k in (0, 1, 9, 8, 3, 2, 6, 7)]
    + [(2, k) for k in (0, 2, 13, 11, 5, 3, 8, 10)]
    + [(1, 11), (0, 0), (1, 10), (0, 3), (1, 4), (0, 1), (1, 5), (0, 2)]
    + [(2, k) for k in (15, 1, 14, 12, 6, 4, 7, 9)]
)
# ring -> (angle step, angle offset)
_APSK_GRID = {0: (np.pi / 2, np.pi / 4), 1: (np.pi / 6, np.pi / 4), 2: (np.pi / 8, np.pi / 8)}


def _pam_gray(bits: np.ndarray) -> np.ndarray:
    """TS 38.211 recursive amplitude for bits (b0, b2, b4, ...): (1-2b0)(2^(m-1) - (1-2b2)(2^(m-2) - ...))."""
    amp = np.zeros(bits.shape[:-1])
    for j in range(bits.shape[-1] - 1, -1, -1):
        s = 1 - 2 * bits[..., j].astype(float)
        amp = s * ((1 << (bits.shape[-1] - 1 - j)) - amp) if j < bits.shape[-1] - 1 else s
    return amp


def _points(name: str, ratios: tuple[float, ...]) -> np.ndarray:
    if name == "bpsk":
        return np.array([1.0, -1.0], dtype=complex)
    m = {"qpsk": 2, "8psk": 3, "16qam": 4, "64qam": 6, "16apsk": 4, "32apsk": 5}[name]
    labels = np.arange(1 << m)
    bits = (labels[:, None] >> np.arange(m - 1, -1, -1)) & 1  # MSB first
    if name in ("qpsk", "16qam", "64qam"):
        pts = _pam_gray(bits[:, 0::2]) + 1j * _pam_gray(bits[:, 1::2])
    elif name == "8psk":
        pts = np.exp(1j * (np.array(_8PSK_K) * np.pi / 4 + np.pi / 4))
    else:
        table = _16APSK if name == "16apsk" else _32APSK
        radii = (1.0,) + ratios
        pts = np.array([radii[r] * np.exp(1j * (k * _APSK_GRID[r][0] + _APSK_GRID[r][1])) for r, k in table])
    return pts / np.sqrt(np.mean(np.abs(pts) ** 2))


@numba.njit(cache=True, fastmath=True, inline="always")
def _label_max(d, zeros, ones, b, nb, b0, b1):
    """b0[j] / b1[j] = the largest d[p, j] over the points (or levels) p in zeros[b] / in ones[b], j < nb."""
    z, o = zeros[b, 0], ones[b, 0]
    for j in range(nb):
        b0[j] = d[z, j]
        b1[j] = d[o, j]
    for h in range(1, zeros.shape[1]):
        z, o = zeros[b, h], ones[b, h]
        for j in range(nb):
            b0[j] = max(b0[j], d[z, j])
            b1[j] = max(b1[j], d[o, j])


@numba.njit(cache=True, fastmath=True)
def _demap_kernel(y, n0, pts, zeros, ones, exact, out):
    """Max-log or exact (log-MAP) LLRs of any constellation: zeros[b] / ones[b] list the points whose label
    bit b is 0 / 1 (ascending). Blocks of symbols with the symbol loop innermost (SIMD); n0 of one element
    applies to all symbols."""
    n_sym, n_pts, m, half = y.shape[0], pts.shape[0], zeros.shape[0], zeros.shape[1]
    blk = 64
    yr, yi, inv = np.empty(blk), np.empty(blk), np.empty(blk)
    b0, b1, s0, s1 = np.empty(blk), np.empty(blk), np.empty(blk), np.empty(blk)
    d = np.empty((n_pts, blk))
    for i0 in range(0, n_sym, blk):
        nb = min(blk, n_sym - i0)
        for j in range(nb):
            inv[j] = 1.0 / max(n0[i0 + j] if n0.size > 1 else n0[0], 1e-30)
            yr[j] = y[i0 + j].real
            yi[j] = y[i0 + j].imag
        for p in range(n_pts):
            pr, pi = pts[p].real, pts[p].imag
            for j in range(nb):
                dr = yr[j] - pr
                di = yi[j] - pi
                d[p, j] = -(dr * dr + di * di) * inv[j]  # log-likelihood up to a constant
        for b in range(m):
            _label_max(d, zeros, ones, b, nb, b0, b1)
            if exact:
                for j in range(nb):
                    s0[j] = 0.0
                    s1[j] = 0.0
                for h in range(half):
                    z, o = zeros[b, h], ones[b, h]
                    for j in range(nb):
                        s0[j] += np.exp(d[z, j] - b0[j])
                        s1[j] += np.exp(d[o, j] - b1[j])
                for j in range(nb):
                    out[i0 + j, b] = b0[j] - b1[j] + np.log(s0[j]) - np.log(s1[j])
            else:
                for j in range(nb):
                    out[i0 + j, b] = b0[j] - b1[j]


@numba.njit(cache=True, fastmath=True)
def _demap_qam_maxlog_kernel(y, n0, levels, zeros, ones, out):
    """Max-log LLRs of a square Gray QAM, one axis at a time: the I axis carries the even label bits, the
    Q axis the odd ones, so a symbol needs the sqrt(M) distances of each axis instead of all M points.
    zeros[b] / ones[b]: the levels whose axis bit b is 0 / 1. Blocks of symbols, the symbol loop innermost
    (SIMD); n0 of one element applies to all symbols."""
    n_sym, n_lev, m_axis = y.shape[0], levels.shape[0], zeros.shape[0]
    blk = 64
    v, inv = np.empty(blk), np.empty(blk)
    b0, b1 = np.empty(blk), np.empty(blk)
    d = np.empty((n_lev, blk))
    for i0 in range(0, n_sym, blk):
        nb = min(blk, n_sym - i0)
        for j in range(nb):
            inv[j] = 1.0 / max(n0[i0 + j] if n0.size > 1 else n0[0], 1e-30)
        for axis in range(2):
            for j in range(nb):
                v[j] = y[i0 + j].real if axis == 0 else y[i0 + j].imag
            for lv in range(n_lev):
                level = levels[lv]
                for j in range(nb):
                    dv = v[j] - level
                    d[lv, j] = -(dv * dv) * inv[j]
            for b in range(m_axis):
                _label_max(d, zeros, ones, b, nb, b0, b1)
                for j in range(nb):
                    out[i0 + j, 2 * b + axis] = b0[j] - b1[j]


@numba.njit(cache=True, fastmath=True)
def _nearest_kernel(y, pts, out):
    for i in range(y.size):
        best, arg = 1e300, 0
        for p in range(pts.size):
            d = (y[i].real - pts[p].real) ** 2 + (y[i].imag - pts[p].imag) ** 2
            if d < best:
                best, arg = d, p
        out[i] = arg


def nearest_point_index(symbols: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index of the nearest of `points` [M] for every symbol: complex [...] -> int64 [...]."""
    y = np.asarray(symbols)
    idx = np.empty(y.size, dtype=np.int64)
    _nearest_kernel(np.ascontiguousarray(y.ravel(), dtype=np.complex128), np.asarray(points, dtype=np.complex128).ravel(), idx)
    return idx.reshape(y.shape)


class Constellation:
    """A Gray-mapped constellation with unit average energy.

    Parameters
    ----------
    name : str
        One of ``bpsk, qpsk, 8psk, 16qam, 64qam, 16apsk, 32apsk``.
    code_rate : str | float | None
        Only for APSK: the DVB-S2 code rate that fixes the ring ratios ("3/4" when None).

    Attributes
    ----------
    points : complex64 [2**m]
        Point of each label; label bits are MSB first (bit 0 of a symbol is the label's MSB).
    points_f64 : complex128 [2**m]
        The same points in double precision.
    bits_per_symbol : int
        m.
    """

    def __init__(self, name: str, code_rate: str | float | None = None):
        name = str(name).lower()
        if name not in MODULATIONS:
            raise ValueError(f"unknown modulation {name!r}; choose one of: {', '.join(MODULATIONS)}")
        ratios: tuple[float, ...] = ()
        if name in APSK_RING_RATIOS:
            rate = _APSK_DEFAULT_RATE[name] if code_rate is None else str(Fraction(code_rate).limit_denominator(20))
            if rate not in APSK_RING_RATIOS[name]:
                raise ValueError(
                    f"{name} has no DVB-S2 ring ratio for code rate {code_rate!r}; "
                    f"choose one of: {', '.join(APSK_RING_RATIOS[name])}"
                )
            ratios = APSK_RING_RATIOS[name][rate]
        self.name = name
        self.ring_ratios = ratios
        self.points_f64 = _points(name, ratios)  # complex128, for theory and tests
        self.points = self.points_f64.astype(np.complex64)
        self._points_c128 = self.points.astype(np.complex128)  # what the demapper measures distances to
        self.bits_per_symbol = int(np.log2(self.points.size))
        labels = np.arange(self.points.size)
        self.bit_table = ((labels[:, None] >> np.arange(self.bits_per_symbol - 1, -1, -1)) & 1).astype(np.uint8)
        self._weights = (1 << np.arange(self.bits_per_symbol - 1, -1, -1)).astype(np.int64)
        self._axis = self._qam_axis() if name in ("qpsk", "16qam", "64qam") else None
        # per label bit, the points where it is 0 and where it is 1 (ascending): what the demappers max over
        self._label_sets = (np.stack([np.flatnonzero(self.bit_table[:, b] == 0) for b in range(self.bits_per_symbol)]),
                            np.stack([np.flatnonzero(self.bit_table[:, b] == 1) for b in range(self.bits_per_symbol)]))

    def _qam_axis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Levels of one axis and, per axis bit (even label bits on I, odd on Q, the same labels), the levels
        where it is 0 and where it is 1."""
        levels = np.unique(np.round(self.points_f64.real, 12))
        bits = np.zeros((levels.size, self.bits_per_symbol // 2), np.uint8)
        for p, pt in enumerate(self.points_f64):
            bits[np.argmin(np.abs(levels - pt.real))] = self.bit_table[p, 0::2]
        for p, pt in enumerate(self.points_f64):  # the Q axis must use the same labels (TS 38.211 QAM does)
            if not np.array_equal(bits[np.argmin(np.abs(levels - pt.imag))], self.bit_table[p, 1::2]):
                raise RuntimeError(f"{self.name} is not a separable Gray QAM; demap it point by point")
        zeros = np.stack([np.flatnonzero(bits[:, b] == 0) for b in range(bits.shape[1])])
        ones = np.stack([np.flatnonzero(bits[:, b] == 1) for b in range(bits.shape[1])])
        return levels.astype(np.float32).astype(np.float64), zeros, ones  # the levels as complex64 points hold them

    def __repr__(self) -> str:
        return f"Constellation({self.name!r}, m={self.bits_per_symbol})"

    def map(self, bits: np.ndarray) -> np.ndarray:
        """Map bits to symbols.

        Input: bits, uint8/bool/int [..., m*n] of 0/1.  Output: complex64 [..., n].
        """
        bits = np.asarray(bits)
        m = self.bits_per_symbol
        if bits.ndim == 0 or bits.shape[-1] % m:
            raise ValueError(
                f"{self.name} maps {m} bits per symbol, but the last axis has {bits.shape[-1] if bits.ndim else 0} "
                f"bits; pad it to a multiple of {m}"
            )
        if bits.size and (bits.min() < 0 or bits.max() > 1):
            raise ValueError(f"bits must hold only 0 and 1, found values in [{bits.min()}, {bits.max()}]")
        labels = bits.reshape(*bits.shape[:-1], -1, m).astype(np.int64) @ self._weights
        return self.points[labels]

    def demap(self, symbols: np.ndarray, noise_var, method: str = "maxlog") -> np.ndarray:
        """Soft-demap symbols to bit LLRs, llr = log P(b=0 | y) / P(b=1 | y).

        Input: symbols complex [..., n]; noise_var: complex noise variance N0 per symbol, a float or an
        array broadcastable to ``symbols``; method "maxlog" or "exact" (log-MAP).
        Output: float32 [..., m*n].
        """
        if method not in ("maxlog", "exact"):
            raise ValueError(f"unknown demapping method {method!r}; choose 'maxlog' or 'exact'")
        y = np.asarray(symbols)
        n0 = np.asarray(noise_var, dtype=np.float64)
        if n0.size == 1:  # the common case, checked without array passes
            ok = math.isfinite(float(n0.flat[0])) and float(n0.flat[0]) > 0
        else:
            ok = bool(np.all(np.isfinite(n0) & (n0 > 0)))
        if not ok:
            raise ValueError(f"noise_var must be finite and > 0, got {noise_var!r}")
        n0 = n0.reshape(1) if n0.size == 1 else np.ascontiguousarray(np.broadcast_to(n0, y.shape).ravel())
        yf = np.ascontiguousarray(y.ravel(), dtype=np.complex128)
        out = np.empty((yf.size, self.bits_per_symbol), dtype=np.float32)  # computed in float64, stored rounded
        if self._axis is not None and method == "maxlog":
            _demap_qam_maxlog_kernel(yf, n0, *self._axis, out)
        else:
            _demap_kernel(yf, n0, self._points_c128, *self._label_sets, method == "exact", out)
        return out.reshape(*y.shape[:-1], -1) if y.ndim else out.ravel()

    def hard_decide(self, symbols: np.ndarray) -> np.ndarray:
        """Nearest-point bits: complex [..., n] -> uint8 [..., m*n]."""
        y = np.asarray(symbols)
        return self.bit_table[nearest_point_index(y, self.points_f64)].reshape(*y.shape[:-1], -1)
