"""Burst synchronisation: detection, carrier frequency, symbol timing and pilot-aided phase tracking.

Frequencies here are normalised: cycles per sample (`*_cps`) or cycles per symbol (`*_cpsym`);
multiply by the symbol rate for Hz. The chain a burst receiver runs (see phy/link.py):

1. `BurstDetector` on the matched-filtered stream: differentially combined segment correlations with the
   preamble (insensitive to a carrier offset up to 1 / (2 * segment) cycles per symbol), normalised by the
   received energy, against a fixed threshold; gives start, fractional timing and a coarse carrier offset.
2. `estimate_cfo_segments`: fine carrier offset from the slope of the unwrapped phases of preamble segments.
3. Fractional timing from the correlation with the preamble at +-1 sample (parabola).
4. `estimate_clock_drift`: sample-clock offset from the timing of every pilot block (least-squares line).
5. `PhaseTracker`: complex gain of every pilot block, unwrapped, fitted by a polynomial in time
   (quadratic: phase, residual frequency and a Doppler rate across the burst).

After detection the matched filter is evaluated only where a symbol or a timing probe needs it, at the
fractional instant itself, from a polyphase bank of the RRC pulse (`matched_filter_at`, 128 phases: at
most 1/256 sample off): one 65-tap dot product per symbol instead of the filter at every sample and an
interpolation between them, and no interpolation error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import math

import numba
import numpy as np

from sagin_hil.phy.estimation import snr_data_aided

__all__ = [
    "Rotator",
    "BurstDetector",
    "fir_range",
    "append_finite",
    "Detection",
    "matched_filter_at",
    "estimate_cfo_segments",
    "estimate_clock_drift",
    "PhaseTracker",
    "BurstSynchronizer",
    "SyncedBurst",
]


class Rotator:
    """Streaming carrier rotation (an NCO): y[n] = x[n] exp(j phi[n]), frequency ramping at a constant rate.

    Parameters
    ----------
    freq_cps : float
        Cycles per sample at the first sample.
    rate_cps2 : float
        Frequency change, cycles per sample per sample (a Doppler rate).
    phase_rad : float
        Initial phase.

    Input: complex [n].  Output: complex64 [n]; chunked == one call (the phase is computed from the
    absolute sample index).
    """

    def __init__(self, freq_cps: float = 0.0, rate_cps2: float = 0.0, phase_rad: float = 0.0):
        self.freq_cps, self.rate_cps2, self.phase_rad = float(freq_cps), float(rate_cps2), float(phase_rad)
        self._n = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        n = np.arange(self._n, self._n + x.size, dtype=np.float64)
        # phase(n) = phi0 + 2 pi (f0 n + rate n^2 / 2), evaluated from the absolute index: no drift over chunks
        cycles = self.freq_cps * n + 0.5 * self.rate_cps2 * n * n
        self._n += x.size
        return (x * np.exp(1j * (self.phase_rad + 2 * np.pi * np.mod(cycles, 1.0)))).astype(np.complex64)


@numba.njit(cache=True)
def _detect_kernel(rr, ri, pre_r, pre_i, seg, sps, n_pos, metric, dsum_r, dsum_i, stop_above):
    """Metric at positions m of (rr, ri), m < n_pos, all inside: vectorised over blocks of consecutive
    positions (SIMD, unit stride), each position summed in a fixed order (no fastmath), so a position's
    metric does not depend on which call or block computed it. Stops after the first block of 64 positions
    with a metric above `stop_above` (the rest stay as they were).

    The window energy is a sum of segment energies, and the segment energy at sample n, sum_i |r[n + i sps]|^2,
    is the same number for every position whose window has a segment starting at n: computed once per
    sample (seg_en), then 64 additions per position instead of 512 multiply-adds."""
    n_pre = pre_r.size
    k_seg = n_pre // seg
    real = not np.any(pre_i)
    blk = 64
    f4 = rr.dtype  # float32: twice the SIMD lanes of float64 for a threshold test and a coarse angle
    n_en = n_pos + (k_seg - 1) * seg * sps
    seg_en = np.zeros(n_en, f4)
    for i in range(seg):
        xr = rr[i * sps : i * sps + n_en]
        xi = ri[i * sps : i * sps + n_en]
        for n in range(n_en):
            seg_en[n] += xr[n] * xr[n] + xi[n] * xi[n]
    cr, ci = np.empty(blk, f4), np.empty(blk, f4)
    pr_, pi_ = np.empty(blk, f4), np.empty(blk, f4)
    ar, ai, en = np.empty(blk, f4), np.empty(blk, f4), np.empty(blk, f4)
    for m0 in range(0, n_pos, blk):
        mb = min(blk, n_pos - m0)
        for m in range(mb):
            ar[m] = 0.0
            ai[m] = 0.0
            en[m] = 0.0
        if real and seg == 4:  # ours: one pass per segment, its correlation and the combining fused
            for k in range(k_seg):
                a0 = m0 + 4 * k * sps
                p0, p1, p2, p3 = pre_r[4 * k], pre_r[4 * k + 1], pre_r[4 * k + 2], pre_r[4 * k + 3]
                r0, r1 = rr[a0 : a0 + mb], rr[a0 + sps : a0 + sps + mb]
                r2, r3 = rr[a0 + 2 * sps : a0 + 2 * sps + mb], rr[a0 + 3 * sps : a0 + 3 * sps + mb]
                i0, i1 = ri[a0 : a0 + mb], ri[a0 + sps : a0 + sps + mb]
                i2, i3 = ri[a0 + 2 * sps : a0 + 2 * sps + mb], ri[a0 + 3 * sps : a0 + 3 * sps + mb]
                e_k = seg_en[a0 : a0 + mb]
                for m in range(mb):
                    c_r = r0[m] * p0 + r1[m] * p1 + r2[m] * p2 + r3[m] * p3
                    c_i = i0[m] * p0 + i1[m] * p1 + i2[m] * p2 + i3[m] * p3
                    if k > 0:  # differential combining: c_k conj(c_{k-1})
                        ar[m] += c_r * pr_[m] + c_i * pi_[m]
                        ai[m] += c_i * pr_[m] - c_r * pi_[m]
                    pr_[m] = c_r
                    pi_[m] = c_i
                    en[m] += e_k[m]
        for k in range(k_seg if not (real and seg == 4) else 0):
            for m in range(mb):
                cr[m] = 0.0
                ci[m] = 0.0
            for i in range(seg):
                j = k * seg + i
                xr = rr[m0 + j * sps : m0 + j * sps + mb]
                xi = ri[m0 + j * sps : m0 + j * sps + mb]
                p_r, p_i = pre_r[j], pre_i[j]
                for m in range(mb):
                    vr = xr[m]
                    vi = xi[m]
                    cr[m] += vr * p_r - vi * p_i
                    ci[m] += vr * p_i + vi * p_r
            e_k = seg_en[m0 + k * seg * sps : m0 + k * seg * sps + mb]
            for m in range(mb):
                en[m] += e_k[m]
            if k > 0:  # differential combining: c_k conj(c_{k-1})
                for m in range(mb):
                    ar[m] += cr[m] * pr_[m] + ci[m] * pi_[m]
                    ai[m] += ci[m] * pr_[m] - cr[m] * pi_[m]
            for m in range(mb):
                pr_[m] = cr[m]
                pi_[m] = ci[m]
        for m in range(mb):
            e = en[m]
            metric[m0 + m] = np.hypot(np.float64(ar[m]), np.float64(ai[m])) / (seg * e) * k_seg / (k_seg - 1) if e > 0 else 0.0
            dsum_r[m0 + m] = ar[m]
            dsum_i[m0 + m] = ai[m]
        for m in range(mb):
            if metric[m0 + m] > stop_above:
                return


@numba.njit(cache=True)
def _fir_kernel(xf, taps, a, b, outf):
    # on float views (re, im interleaved), in blocks that stay in L1, four taps per pass (one load and store
    # of the output per four multiply-adds; taps zero-padded to a multiple of four), the tap loop outside so
    # the inner loop is SIMD; no fastmath, so every sample sums its taps in the same order whatever the
    # call: in groups of four, left to right, a tap that reaches before the stream's first sample adding 0
    zero = xf.dtype.type(0.0)
    for b0 in range(2 * a, 2 * b, 2048):
        b1 = min(b0 + 2048, 2 * b)
        for j in range(b0, b1):
            outf[j] = 0.0
        for k in range(0, taps.size, 4):
            t0, t1, t2, t3 = taps[k], taps[k + 1], taps[k + 2], taps[k + 3]
            lo = min(max(b0, 2 * (k + 3)), b1)  # from here on every tap of the group has its sample
            for j in range(b0, lo):  # the first samples of the stream
                v = [xf[j - 2 * q] if j - 2 * q >= 0 else zero for q in range(k, k + 4)]
                outf[j] = outf[j] + (t0 * v[0] + t1 * v[1] + t2 * v[2] + t3 * v[3])
            o = outf[lo:b1]
            x0, x1 = xf[lo - 2 * k : b1 - 2 * k], xf[lo - 2 * k - 2 : b1 - 2 * k - 2]
            x2, x3 = xf[lo - 2 * k - 4 : b1 - 2 * k - 4], xf[lo - 2 * k - 6 : b1 - 2 * k - 6]
            for j in range(b1 - lo):
                o[j] = o[j] + (t0 * x0[j] + t1 * x1[j] + t2 * x2[j] + t3 * x3[j])


@numba.njit(cache=True)
def append_finite(dst, src):
    """dst[:] = src in complex64, a part (I or Q) that is NaN or infinite there (beyond float32's range
    too) replaced by 0: such samples count as silence."""
    for i in range(src.size):
        re, im = np.float32(src[i].real), np.float32(src[i].imag)
        dst[i] = complex(re if math.isfinite(re) else np.float32(0.0), im if math.isfinite(im) else np.float32(0.0))


def fir_range(x: np.ndarray, taps: np.ndarray, a: int, b: int, out: np.ndarray) -> None:
    """out[a:b] = causal FIR of x (zero before x[0]), each sample summed in a fixed order:
    out[n] = sum_k taps[k] x[n - k], whatever range a call covers. x and out both complex64 (taps float32:
    twice the SIMD lanes, ample for detection) or both complex128 (taps float64)."""
    if b > a:
        real = np.float32 if x.dtype == np.complex64 else np.float64
        padded = np.zeros(-(-taps.size // 4) * 4, real)  # zero taps add exact zeros
        padded[: taps.size] = taps
        _fir_kernel(x.view(real), padded, int(a), int(b), out.view(real))


@dataclass
class Detection:
    """A detected preamble: `index` (integer sample of the first preamble symbol in the searched stream),
    `frac` (fractional sample correction in [-0.5, 0.5]), `metric` (0..1, about snr / (1 + snr)),
    `cfo_cpsym` (coarse carrier offset, cycles per symbol)."""

    index: int
    frac: float
    metric: float
    cfo_cpsym: float


class BurstDetector:
    """Preamble detector on a matched-filtered stream.

    Parameters
    ----------
    preamble : complex [p]
        Known symbols, p a multiple of `segment`.
    sps : int
        Samples per symbol.
    threshold : float
        On the normalised metric: noise alone gives about 1 / (segment sqrt(K - 1)) rms with K = p / segment
        segments (0.031 for 256 / 4); a burst gives about snr / (1 + snr).
    segment : int
        Symbols per coherent segment; bounds the carrier offset range to +-1 / (2 segment) cycles per symbol
        (+-12.5 % of the symbol rate for 4).
    window : int
        Longest stretch of samples searched per numba call.

    Input (find)
    ------------
    r : complex [n], the matched-filtered stream; start : first sample to search.

    Output
    ------
    Detection (index, frac, metric, cfo_cpsym) of the first preamble at or after `start`, or None.
    """

    def __init__(self, preamble: np.ndarray, sps: int, threshold: float = 0.18, segment: int = 4, window: int = 4096):
        preamble = np.asarray(preamble)
        if preamble.size % segment or preamble.size // segment < 4:
            raise ValueError(f"preamble length {preamble.size} must be a multiple of segment={segment}, >= 4 segments")
        self.pre = np.ascontiguousarray(np.conj(preamble), dtype=np.complex128)
        self._pre_r, self._pre_i = self.pre.real.astype(np.float32), self.pre.imag.astype(np.float32)
        self.sps, self.threshold, self.segment, self.window = int(sps), float(threshold), int(segment), int(window)

    def metric(self, r: np.ndarray, start: int = 0, stop: int | None = None, stride: int = 1,
               stop_above: float = np.inf):
        """Metric float64 [m] and differential sums complex128 [m] at n = start, start+stride, ... < stop.
        With stop_above, positions from the first block of 64 after a metric above it on are left at 0."""
        r = np.asarray(r)
        stop = r.size if stop is None else stop
        m = len(range(start, stop, stride))
        metric, dsum = np.zeros(m), np.zeros(m, dtype=np.complex128)
        span = (self.pre.size - 1) * self.sps
        first = 0 if start >= 0 else -(-(-start) // stride)  # positions before the stream's start stay 0
        n_in = len(range(start + first * stride, min(stop, r.size - span), stride))
        if n_in > 0:
            d_r, d_i = np.zeros(n_in), np.zeros(n_in)
            _metric_grid(np.ascontiguousarray(r), start + first * stride, n_in, stride, self._pre_r, self._pre_i,
                         self.segment, self.sps, float(stop_above), metric[first:], d_r, d_i)
            dsum.real[first : first + n_in] = d_r
            dsum.imag[first : first + n_in] = d_i
        return metric, dsum

    def find(self, r: np.ndarray, start: int = 0, stop: int | None = None) -> Detection | None:
        """The first preamble at or after sample `start` of the stream `r`, or None.

        Candidates are searched on the grid start, start + 2, ... below `stop` (default: the last start with
        the whole preamble inside r); the peak search around a candidate may read up to two preamble lengths
        beyond it. A stream searched piece by piece (stop, then on from the next grid point) finds what
        one search of the whole finds, as long as r holds those two preamble lengths beyond each stop.
        """
        last = r.size - (self.pre.size - 1) * self.sps  # last start with the whole preamble inside
        end = last if stop is None else min(int(stop), last)
        index, frac, metric, cfo = _find_kernel(np.ascontiguousarray(r), int(start), end, last, self._pre_r,
                                                self._pre_i, self.segment, self.sps, self.threshold, self.window)
        return None if index < 0 else Detection(int(index), float(frac), float(metric), float(cfo))


@numba.njit(cache=True)
def _metric_grid(r, start, n, stride, pre_r, pre_i, seg, sps, stop_above, metric, dsum_r, dsum_i):
    """BurstDetector.metric at the n positions start + i stride, all with the preamble's span inside r:
    the samples they read copied to contiguous float32 (only the grid's phase when the stride divides sps,
    so the kernel reads at unit stride), then _detect_kernel. metric, dsum_r, dsum_i [n] start at 0."""
    span = (pre_r.size - 1) * sps
    if sps % stride == 0:
        m = n - 1 + span // stride + 1
        rr, ri = np.empty(m, np.float32), np.empty(m, np.float32)
        for i in range(m):
            v = r[start + i * stride]
            rr[i], ri[i] = v.real, v.imag
        _detect_kernel(rr, ri, pre_r, pre_i, seg, sps // stride, n, metric, dsum_r, dsum_i, stop_above)
    else:  # evaluate every position and keep the grid's
        n_all = (n - 1) * stride + 1
        rr, ri = np.empty(n_all + span, np.float32), np.empty(n_all + span, np.float32)
        for i in range(n_all + span):
            v = r[start + i]
            rr[i], ri[i] = v.real, v.imag
        m_all, d_r, d_i = np.zeros(n_all), np.zeros(n_all), np.zeros(n_all)
        _detect_kernel(rr, ri, pre_r, pre_i, seg, sps, n_all, m_all, d_r, d_i, np.inf)
        for i in range(n):
            metric[i], dsum_r[i], dsum_i[i] = m_all[i * stride], d_r[i * stride], d_i[i * stride]


@numba.njit(cache=True)
def _find_kernel(r, start, end, last, pre_r, pre_i, seg, sps, threshold, window):
    """BurstDetector.find in one call: (index, frac, metric, cfo_cpsym), index -1 when nothing is found."""
    pos = max(start, 0)
    step = 512  # grows: a burst usually follows the previous one within a guard interval
    while pos < end:
        stop = min(pos + step, end)
        step = min(2 * step, window)
        # every other sample (the peak is > 1 sample wide), up to the first crossing
        n = (stop - pos + 1) // 2
        coarse, c_r, c_i = np.zeros(n), np.zeros(n), np.zeros(n)
        _metric_grid(r, pos, n, 2, pre_r, pre_i, seg, sps, threshold, coarse, c_r, c_i)
        for h in range(n):
            if coarse[h] > threshold:
                # a window that only partly overlaps the preamble can cross the threshold at high SNR (its
                # energy is small); the true peak is then within one preamble length: take the maximum there
                n1 = pos + 2 * h
                nw = (min(n1 + pre_r.size * sps + 2, last) - n1 + 1) // 2
                wide, w_r, w_i = np.zeros(nw), np.zeros(nw), np.zeros(nw)
                _metric_grid(r, n1, nw, 2, pre_r, pre_i, seg, sps, np.inf, wide, w_r, w_i)
                n2 = n1 + 2 * np.argmax(wide)
                lo = max(n2 - 3, 0)
                nf = min(n2 + 4, last) - lo
                fine, f_r, f_i = np.zeros(nf), np.zeros(nf), np.zeros(nf)
                _metric_grid(r, lo, nf, 1, pre_r, pre_i, seg, sps, np.inf, fine, f_r, f_i)
                j = np.argmax(fine)
                frac = 0.0
                if 0 < j < nf - 1:
                    a, b, c = fine[j - 1], fine[j], fine[j + 1]
                    den = a - 2 * b + c
                    frac = min(max(0.5 * (a - c) / den, -0.5), 0.5) if den < 0 else 0.0
                return lo + j, frac, fine[j], math.atan2(f_i[j], f_r[j]) / (2 * np.pi * seg)
        pos = stop
    return -1, 0.0, 0.0, 0.0


@numba.njit(cache=True, fastmath=True, inline="always")
def _mf_at(xr, xi, t, bank):
    """The matched filter's output at fractional sample t of the unfiltered samples xr + j xi (zero outside
    them), from the bank row of the nearest phase: sum_j x[n - d + j] bank[p, j], n = floor(t)."""
    phases, n_t = bank.shape[0] - 1, bank.shape[1]
    base = int(math.floor(t))
    p = min(max(int((t - base) * phases + 0.5), 0), phases)  # clamped: a NaN t must not index outside
    lo = base - (n_t - 1) // 2
    j0, j1 = max(0, -lo), min(n_t, xr.size - lo)
    ar = np.float32(0.0)
    ai = np.float32(0.0)
    row = bank[p]
    sr, si, w = xr[lo + j0 : lo + j1], xi[lo + j0 : lo + j1], row[j0:j1]  # empty when t is far outside
    for j in range(j1 - j0):
        ar += sr[j] * w[j]
        ai += si[j] * w[j]
    return complex(ar, ai)


@numba.njit(cache=True, fastmath=True)
def _mf_grid(xr, xi, t0, step, bank, out):
    """out[k] = the matched filter at t0 + k step."""
    for k in range(out.size):
        out[k] = _mf_at(xr, xi, t0 + k * step, bank)


def matched_filter_at(x: np.ndarray, t: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """The RRC matched filter of the unfiltered samples x at fractional sample positions t (zero outside x).

    Input: x complex [n]; t float [...]; bank: `pulse.rrc_polyphase(...)`. Output: complex128 shaped like t.
    At integer t it is the "same"-mode convolution with rrc_taps (to float32 rounding).
    """
    x = np.asarray(x)
    t = np.asarray(t, dtype=np.float64)
    xr = np.ascontiguousarray(x.real, dtype=np.float32)
    xi = np.ascontiguousarray(x.imag, dtype=np.float32) if np.iscomplexobj(x) else np.zeros_like(xr)
    out = np.empty(t.size, np.complex128)
    _mf_points(xr, xi, np.ascontiguousarray(t.ravel()), bank, out)
    return out.reshape(t.shape)


@numba.njit(cache=True, fastmath=True)
def _mf_points(xr, xi, t, bank, out):
    for k in range(t.size):
        out[k] = _mf_at(xr, xi, t[k], bank)


def estimate_cfo_segments(z: np.ndarray, segment: int = 16) -> float:
    """Frequency (cycles per symbol) of a modulation-free sequence z (received x conj(known)): least-squares
    slope of the unwrapped phases of `segment`-symbol sums. Range +-1 / (2 segment); near the CRLB."""
    z = np.asarray(z)
    if z.size // segment < 2:
        raise ValueError(f"need at least {2 * segment} symbols to estimate a frequency, got {z.size}")
    return float(_cfo_segments_kernel(np.ascontiguousarray(z, dtype=np.complex128), int(segment)))


@numba.njit(cache=True)
def _cfo_segments_kernel(z, segment):
    k = z.size // segment
    phase = np.empty(k)
    for i in range(k):
        acc = 0j
        for j in range(i * segment, (i + 1) * segment):
            acc += z[j]
        phase[i] = math.atan2(acc.imag, acc.real)
        if i:  # unwrap against the previous segment (np.unwrap)
            phase[i] -= 2 * np.pi * np.round((phase[i] - phase[i - 1]) / (2 * np.pi))
    tm, pm = 0.5 * (k - 1) * segment, phase.mean()
    num = den = 0.0
    for i in range(k):
        t = i * segment - tm
        num += t * (phase[i] - pm)
        den += t * t
    return num / den / (2 * np.pi)


@numba.njit(cache=True, fastmath=True, inline="always")
def _timing_error(xr, xi, bank, base, sps, drift, sym, ref, j0, j1):
    """(timing error in samples, |correlation|) of the known symbols ref[j0:j1], symbol j at base + sym[j] sps
    (1 + drift): the peak of a parabola through |correlation| at -1, 0, +1 sample, clipped to +-1."""
    m_lo = m_mid = m_hi = 0.0
    for di in range(3):
        acc = 0j
        for j in range(j0, j1):
            acc += _mf_at(xr, xi, base + sym[j] * sps * (1 + drift) + (di - 1.0), bank) * ref[j]
        if di == 0:
            m_lo = abs(acc)
        elif di == 1:
            m_mid = abs(acc)
        else:
            m_hi = abs(acc)
    den = m_lo - 2 * m_mid + m_hi
    return (min(max(0.5 * (m_lo - m_hi) / den, -1.0), 1.0) if den < 0 else 0.0), m_mid


@numba.njit(cache=True, fastmath=True)
def _batch_timing_pass(xr, xi, bank, t0, sps, offset, drift, sym, ref, starts, sizes, x, min_span, max_slope):
    """One batch pass of estimate_clock_drift in one kernel: every block's timing error where the line
    (offset, drift) puts it (parabola through |correlation| at -1, 0, +1 sample), then the line through
    them weighted by the squared correlation; the slope stays 0 until the blocks span `min_span` samples
    (over a short span timing noise would give a wild slope, which extrapolation would amplify)."""
    n_b = starts.size
    err, w = np.empty(n_b), np.empty(n_b)
    for b in range(n_b):
        err[b], m_mid = _timing_error(xr, xi, bank, t0 + offset, sps, drift, sym, ref, starts[b], starts[b] + sizes[b])
        w[b] = m_mid * m_mid + 1e-30
    e = offset + drift * x + err
    sw = w.sum()
    xm, em = (w * x).sum() / sw, (w * e).sum() / sw
    slope = 0.0
    if n_b > 1 and x.max() - x.min() >= min_span:
        slope = (w * (x - xm) * (e - em)).sum() / max((w * (x - xm) ** 2).sum(), 1e-12)
    slope = min(max(slope, -max_slope), max_slope)  # beyond any oscillator: a bad fit
    return em - slope * xm, slope


@numba.njit(cache=True, fastmath=True)
def _sequential_timing(xr, xi, bank, t0, sps, order, sym, ref, starts, sizes, x, min_span, max_slope):
    """Visit blocks in `order`; measure each where the running weighted line predicts it; refit."""
    offset, drift = 0.0, 0.0
    sw = swx = swe = swxx = swxe = 0.0
    xmin, xmax = 1e300, -1e300
    for b in order:
        err, m_mid = _timing_error(xr, xi, bank, t0 + offset, sps, drift, sym, ref, starts[b], starts[b] + sizes[b])
        e = offset + drift * x[b] + err
        wb = m_mid * m_mid + 1e-30
        sw += wb
        swx += wb * x[b]
        swe += wb * e
        swxx += wb * x[b] * x[b]
        swxe += wb * x[b] * e
        xmin, xmax = min(xmin, x[b]), max(xmax, x[b])
        xm, em = swx / sw, swe / sw
        slope = 0.0
        if xmax - xmin >= min_span:
            var = swxx / sw - xm * xm
            slope = (swxe / sw - xm * em) / var if var > 1e-12 else 0.0
            slope = min(max(slope, -max_slope), max_slope)
        offset, drift = em - slope * xm, slope
    return offset, drift


def estimate_clock_drift(
    x: np.ndarray,
    t0: float,
    sps: int,
    block_pos: np.ndarray,
    known_blocks: list[np.ndarray],
    bank: np.ndarray,
    passes: int = 2,
    min_span_symbols: int = 1000,
) -> tuple[float, float]:
    """Timing offset (samples) and sample-clock offset (fractional, e.g. 50e-6) from known symbol blocks.

    x: the unfiltered samples (carrier removed), read through the matched filter `bank`
    (pulse.rrc_polyphase). Symbol k of the burst is assumed at t0 + offset + k sps (1 + drift); block b's known symbols
    known_blocks[b] start at symbol block_pos[b]. The blocks are first visited in order, each measured
    (parabola through |correlation| at -1, 0, +1 sample) where the line fitted so far predicts it, so a drift
    of several samples over a long burst stays inside the +-1 sample capture range; then `passes` batch
    passes refine the line. Fits are least squares weighted by each block's squared correlation (its SNR);
    the drift stays 0 until the blocks measured span `min_span_symbols`.
    """
    block_pos = np.asarray(block_pos, dtype=np.float64)
    if block_pos.size < 2:
        return 0.0, 0.0
    x = np.asarray(x)
    xr, xi = np.ascontiguousarray(x.real, dtype=np.float32), np.ascontiguousarray(x.imag, dtype=np.float32)
    return _clock_drift(xr, xi, bank, t0, _TimingBlocks.make(block_pos, known_blocks, sps), passes, min_span_symbols)


@dataclass(frozen=True)
class _TimingBlocks:
    """estimate_clock_drift's view of the known blocks: symbol index and conjugated reference of every known
    symbol, each block's start and size in them, its order and its centre (samples). Built once per layout."""

    sym: np.ndarray
    ref: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    order: np.ndarray
    x: np.ndarray
    sps: float

    @classmethod
    def make(cls, block_pos: np.ndarray, known_blocks: list[np.ndarray], sps: int) -> "_TimingBlocks":
        block_pos = np.asarray(block_pos, dtype=np.float64)
        sizes = np.array([kb.size for kb in known_blocks], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        sym = np.repeat(block_pos - starts, sizes) + np.arange(sizes.sum())  # symbol index of every known symbol
        ref = np.conj(np.concatenate(known_blocks)).astype(np.complex128)
        return cls(sym, ref, starts, sizes, np.argsort(block_pos), (block_pos + sizes / 2) * sps, float(sps))


def _clock_drift(xr: np.ndarray, xi: np.ndarray, bank: np.ndarray, t0: float, tb: _TimingBlocks, passes: int = 2,
                 min_span_symbols: int = 1000) -> tuple[float, float]:
    span = float(min_span_symbols * tb.sps)
    offset, drift = _sequential_timing(xr, xi, bank, float(t0), tb.sps, tb.order, tb.sym, tb.ref, tb.starts, tb.sizes,
                                       tb.x, span, 500e-6)
    for _ in range(passes):
        offset, drift = _batch_timing_pass(xr, xi, bank, float(t0), tb.sps, offset, drift, tb.sym, tb.ref, tb.starts,
                                           tb.sizes, tb.x, span, 500e-6)
    return offset, drift


@numba.njit(cache=True)
def _unwrap_predicted(centres, phase, memory=4):
    """Unwrap block phases against a linear prediction from the previous `memory` blocks, so a frequency
    that drifts (Doppler rate) beyond half a cycle per block spacing is still followed."""
    out = phase.astype(np.float64).copy()
    for j in range(1, out.size):
        lo = max(j - memory, 0)
        n = j - lo
        pred = out[j - 1]
        if n >= 2:
            cm = np.mean(centres[lo:j])
            pm = np.mean(out[lo:j])
            num, den = 0.0, 0.0
            for i in range(lo, j):
                num += (centres[i] - cm) * (out[i] - pm)
                den += (centres[i] - cm) ** 2
            pred = pm + (num / den) * (centres[j] - cm) if den > 0 else out[j - 1]
        out[j] += 2 * np.pi * np.round((pred - out[j]) / (2 * np.pi))
    return out


@numba.njit(cache=True)
def _weighted_polyfit(x, y, order, w):
    """np.polyfit(x, y, order, w=w) (highest power first) for a small order, by its normal equations: the
    fits here are of order <= 2 on |x| <= 1, well conditioned, and this costs a microsecond, not polyfit's
    hundred (Gaussian elimination with partial pivoting on the (order + 1)^2 system)."""
    n = order + 1
    m = np.zeros((n, n + 1))  # the augmented system
    p = np.empty(n)
    for i in range(x.size):
        w2 = w[i] * w[i]
        p[0] = 1.0
        for a in range(1, n):
            p[a] = p[a - 1] * x[i]
        for a in range(n):
            m[a, n] += w2 * p[a] * y[i]
            for b in range(n):
                m[a, b] += w2 * p[a] * p[b]
    for c in range(n):
        piv = c
        for r in range(c + 1, n):
            if abs(m[r, c]) > abs(m[piv, c]):
                piv = r
        for q in range(n + 1):
            m[c, q], m[piv, q] = m[piv, q], m[c, q]
        for r in range(c + 1, n):
            f = m[r, c] / m[c, c]
            for q in range(c, n + 1):
                m[r, q] -= f * m[c, q]
    coef = np.empty(n)  # highest power first: coef[n - 1 - a] multiplies x^a
    for a in range(n - 1, -1, -1):
        acc = m[a, n]
        for b in range(a + 1, n):
            acc -= m[a, b] * coef[n - 1 - b]
        coef[n - 1 - a] = acc / m[a, a]
    return coef


@numba.njit(cache=True)
def _phase_fit(centres, gains, order):
    """PhaseTracker.fit in one call: (coef, mean |gain|, centre, scale) of the block phases, unwrapped
    against their prediction, fitted by a polynomial of `order` weighted by |gain|; for order 0 the phase of
    the gains' sum (no unwrapping: a block faded to noise cannot throw the others a turn)."""
    n = gains.size
    if n == 0:
        return np.zeros(1), 1.0, 0.0, 1.0
    phase = np.empty(n)
    w = np.empty(n)
    total = 0j
    for i in range(n):
        phase[i] = math.atan2(gains[i].imag, gains[i].real)
        w[i] = abs(gains[i])
        total += gains[i]
    centre = centres.mean()
    scale = max(centres.max() - centres.min(), 1.0)
    if order < 1:
        return np.array([math.atan2(total.imag, total.real)]), w.mean(), centre, scale
    phase = _unwrap_predicted(centres, phase)
    x = (centres - centre) / scale
    return _weighted_polyfit(x, phase, order, w + 1e-12), w.mean(), centre, scale


class PhaseTracker:
    """Pilot-aided carrier phase and gain: a polynomial fit of unwrapped block phases over the burst.

    Parameters: order (2 = phase + residual frequency + Doppler rate; reduced when there are few blocks).
    Input (fit): block centres (symbols) [b], complex gains [b] (mean of received x conj(known) per block).
    Output: `phase(k)` radians at symbol positions k; `gain` (mean |gain|); `freq_cpsym` at position k.
    """

    def __init__(self, order: int = 2):
        self.order = int(order)
        self.coef = np.zeros(1)
        self.gain = 1.0
        self.centre = 0.0
        self.scale = 1.0

    def fit(self, centres: np.ndarray, gains: np.ndarray) -> "PhaseTracker":
        centres = np.ascontiguousarray(centres, dtype=np.float64)
        gains = np.ascontiguousarray(gains, dtype=np.complex128)
        # up to 2 blocks: interpolate; beyond: keep a spare block so that noise is not fitted
        order = min(self.order, centres.size - 1 if centres.size <= 2 else centres.size - 2)
        self.coef, self.gain, self.centre, self.scale = _phase_fit(centres, gains, max(order, 0))
        return self

    def phase(self, k: np.ndarray) -> np.ndarray:
        return np.polyval(self.coef, (np.asarray(k, dtype=np.float64) - self.centre) / self.scale)

    def freq_cpsym(self, k: float) -> float:
        x, deg, slope = (k - self.centre) / self.scale, self.coef.size - 1, 0.0
        for i, c in enumerate(self.coef[:-1]):  # d/dx of sum c_i x^(deg - i), by Horner
            slope = slope * x + (deg - i) * float(c)
        return slope / self.scale / (2 * np.pi)


@numba.njit(cache=True, fastmath=True)
def _derotate(raw, a, t_ref, f_cps, out_re, out_im):
    """out[i] = raw[a + i] exp(-j 2 pi f (a + i - t_ref)), split into float32 real and imaginary parts (what
    the matched filter's dot products read): the phasor exact at the start of every 64 samples (cos / sin,
    the phase reduced modulo one cycle), times a table of the 64 in-block steps, so the samples of a block
    are independent multiplies (SIMD)."""
    steps_re, steps_im = np.empty(64), np.empty(64)
    for i in range(64):
        ph = -2.0 * np.pi * f_cps * i
        steps_re[i], steps_im[i] = np.cos(ph), np.sin(ph)
    for i0 in range(0, out_re.size, 64):
        cyc = f_cps * (a + i0 - t_ref)
        ph = -2.0 * np.pi * (cyc - np.floor(cyc))
        wr, wi = np.cos(ph), np.sin(ph)
        for i in range(min(64, out_re.size - i0)):
            cr = wr * steps_re[i] - wi * steps_im[i]
            ci = wr * steps_im[i] + wi * steps_re[i]
            v = raw[a + i0 + i]
            out_re[i0 + i] = v.real * cr - v.imag * ci
            out_im[i0 + i] = v.real * ci + v.imag * cr


@numba.njit(cache=True)
def _remove_phase(s, coef, centre, scale, inv_gain, out):
    """out[k] = s[k] exp(-j phase(k)) inv_gain, phase(k) = polyval(coef, (k - centre) / scale): one pass
    instead of numpy's five. Exact cos / sin every 64 symbols; in between, for a polynomial of order <= 2
    (the tracker's), the phasor advances by a step that itself turns by a constant (the phase's second
    difference), so the rounding cannot build up past 64 complex products."""
    n_c = coef.size
    c2 = coef[n_c - 3] if n_c >= 3 else 0.0
    dd = 2.0 * c2 / (scale * scale)  # second difference of the phase per symbol
    chirp = complex(math.cos(dd), -math.sin(dd))
    for k0 in range(0, out.size, 64):
        ph0 = 0.0
        ph1 = 0.0
        x0 = (k0 - centre) / scale
        x1 = (k0 + 1 - centre) / scale
        for c in coef:
            ph0 = ph0 * x0 + c
            ph1 = ph1 * x1 + c
        w = complex(math.cos(ph0), -math.sin(ph0)) * inv_gain
        step = complex(math.cos(ph1 - ph0), -math.sin(ph1 - ph0))
        for k in range(k0, min(k0 + 64, out.size)):
            out[k] = s[k] * w
            w *= step
            step *= chirp


@dataclass
class SyncedBurst:
    """Symbols of one burst after synchronisation.

    data : complex128 [n_data], equalised (unit gain, phase removed); noise_var : N0 of `data` (complex);
    snr_db / evm_rms : data-aided on preamble and pilots; cfo_cpsym : total carrier offset at the burst centre;
    drift : sample-clock offset (fraction); t0_raw : raw-stream time (samples) of the first preamble symbol.
    noise_var_per_symbol : N0 / |h_k|^2 of each data symbol when the channel was interpolated between pilot
    blocks (fading), else None (one N0 for all).
    """

    data: np.ndarray
    noise_var: float
    snr_db: float
    evm_rms: float
    cfo_cpsym: float
    drift: float
    t0_raw: float
    noise_var_per_symbol: np.ndarray | None = None

    def noise_vars(self) -> np.ndarray:
        """The noise variance to demap each data symbol with (floored at 1e-9), one per symbol of `data`."""
        return np.broadcast_to(self.noise_var_of(0), self.data.shape).copy()

    def noise_var_of(self, a: int, b: int | None = None) -> np.ndarray | float:
        """noise_vars()[a:b], or the one value they all share (a demapper broadcasts it)."""
        if self.noise_var_per_symbol is None:
            return max(self.noise_var, 1e-9)
        return np.maximum(self.noise_var_per_symbol[a:b], 1e-9)


def fading_detected(block_gains: np.ndarray, n0: float, pilot_len: int) -> bool:
    """True when pilot-block gains (after the polynomial phase and mean gain are removed, so ideally all 1)
    scatter more than their estimation noise explains: mean |g_b - 1|^2 against N0 / L per block, a
    chi-square statistic with 2B degrees of freedom, tested at about 4 standard deviations (1 + 4 / sqrt(B))."""
    b = block_gains.size
    if b < 3 or n0 <= 0:
        return False
    stat = float(np.mean(np.abs(block_gains - 1.0) ** 2)) / (n0 / pilot_len)
    return stat > 1.0 + 4.0 / math.sqrt(b)


class BurstSynchronizer:
    """Turns a detection in a raw sample stream into equalised data symbols of a burst.

    Parameters
    ----------
    fmt : FrameFormat
    sps : int
    rolloff, span_symbols : float, int
        Of the RRC matched filter.
    track_clock : bool
        Estimate the sample-clock offset from the pilots.
    tracking : str
        "poly": a polynomial phase (PhaseTracker) and one gain per burst, which suits a static channel with
        carrier offset and Doppler rate. "block": then also the residual complex gain of every pilot block,
        linearly interpolated between blocks, divided out symbol by symbol (follows fading; each data symbol
        gets its own N0 / |h_k|^2). "auto": "block" when :func:`fading_detected` says the blocks disagree.

    Input
    -----
    `acquire(raw, index_mf, frac, cfo_cpsym)` once per detection: fine carrier offset and preamble timing;
    then `symbols(raw, t0_raw, cfo_cpsym, n_data, n_used)` for as many data symbols as needed (first the
    header, then the whole burst once the header gives its length). raw: the unfiltered samples [n].

    Output
    ------
    (t0_raw, cfo_cpsym) from acquire; SyncedBurst from symbols.
    """

    def __init__(self, fmt, sps: int, rolloff: float, span_symbols: int = 16, track_clock: bool = True,
                 tracking: str = "auto"):
        from sagin_hil.phy.pulse import rrc_polyphase, rrc_taps

        if tracking not in ("auto", "poly", "block"):
            raise ValueError(f"tracking {tracking!r}: choose 'auto', 'poly' or 'block'")
        self.tracking = tracking
        from sagin_hil.phy.stage_clock import StageClock

        self.clock = StageClock()  # the receiver shares its own: synchronisation vs equalisation time
        self.fmt, self.sps, self.track_clock = fmt, int(sps), bool(track_clock)
        self.taps = rrc_taps(rolloff, sps, span_symbols)
        self.bank = rrc_polyphase(rolloff, sps, span_symbols)  # the matched filter at fractional instants
        self.mf_delay = (self.taps.size - 1) // 2
        self._pre_conj = np.conj(fmt.preamble.astype(np.complex128))
        self._pre_sym = np.arange(self._pre_conj.size, dtype=np.float64)

    def _window(self, raw: np.ndarray, t0_raw: float, cfo_cps: float, n_symbols: int):
        """raw[a:b] derotated, as float32 (real, imaginary) for the matched filter's dot products (twice the
        SIMD lanes of float64; the rounding, about 1e-7, lies 70 dB under the noise of any burst worth
        reading), and the window time of preamble symbol 0."""
        pad = self.taps.size + 8
        a = max(int(np.floor(t0_raw)) - pad, 0)
        b = min(int(np.ceil(t0_raw + n_symbols * self.sps * (1 + 1e-3))) + pad, raw.size)
        xr, xi = np.empty(max(b - a, 0), np.float32), np.empty(max(b - a, 0), np.float32)
        _derotate(raw, a, t0_raw, cfo_cps, xr, xi)
        return xr, xi, t0_raw - a

    def acquire(self, raw: np.ndarray, index_mf: int, frac: float, cfo_cpsym: float) -> tuple[float, float]:
        """Fine carrier offset and preamble timing from a detection at causal-matched-filter index
        `index_mf` (+ frac). Output: (t0_raw, cfo_cpsym) refined."""
        t0_raw, n_sym, sps = index_mf + frac - self.mf_delay, self.fmt.preamble.size + 4, float(self.sps)
        xr, xi, t0 = self._window(raw, t0_raw, cfo_cpsym / sps, n_sym)
        cfo_cpsym += _preamble_cfo(xr, xi, self.bank, t0, sps, self._pre_conj)
        xr, xi, t0 = self._window(raw, t0_raw, cfo_cpsym / sps, n_sym)  # derotated by coarse + fine
        return t0_raw + _preamble_timing(xr, xi, self.bank, t0, sps, self._pre_sym, self._pre_conj), cfo_cpsym

    def symbols(self, raw: np.ndarray, t0_raw: float, cfo_cpsym: float, n_data: int, n_used: int | None = None,
                phase_order: int = 2) -> SyncedBurst:
        """Equalised data symbols [:n_used] of a burst carrying n_data data symbols (pilot blocks after
        the last used data symbol are ignored, so the header can be read before n_data is known).
        phase_order: of the pilot phase fit; 2 (phase, residual frequency, Doppler rate), or 0 (one phase)
        for a burst whose carrier offset is already known, from a neighbouring burst."""
        n_used = n_data if n_used is None else min(n_used, n_data)
        geo = self._geometry(int(n_data), int(n_used))
        with self.clock("synchronisation"):
            s, offset, drift = self._timed_symbols(raw, t0_raw, cfo_cpsym, geo)
        with self.clock("equalisation"):
            return self._equalise(s, offset, drift, geo, t0_raw, cfo_cpsym, phase_order)

    def _geometry(self, n_data: int, n_used: int) -> "_BurstGeometry":
        """Where the used data symbols and the known blocks sit (computed once per burst length)."""
        return _BurstGeometry.make(self.fmt, self.sps, n_data, n_used)

    def _timed_symbols(self, raw, t0_raw, cfo_cpsym, geo):
        """Matched-filtered symbols [n_sym] at the timing (offset, clock drift) measured on the known blocks."""
        sps = self.sps
        xr, xi, t0 = self._window(raw, t0_raw, cfo_cpsym / sps, geo.n_sym + 4)
        offset, drift = 0.0, 0.0
        # the preamble and at least two pilot blocks; not for the header, read with the acquisition's timing:
        # its blocks span < 1000 symbols (no drift fitted) and the preamble, 99 % of their weight, already set it
        if self.track_clock and geo.blocks_pos.size >= 3 and not geo.header_stage:
            offset, drift = _clock_drift(xr, xi, self.bank, t0, geo.timing)
        s = np.empty(geo.n_sym, np.complex128)
        _mf_grid(xr, xi, t0 + offset, sps * (1 + drift), self.bank, s)
        return s, offset, drift

    def _equalise(self, s, offset, drift, geo, t0_raw, cfo_cpsym, phase_order=2):
        """Pilot-aided phase and gain removed, SNR measured: the SyncedBurst."""
        gains = _block_gains(s, geo.known_conj, geo.timing.starts, geo.timing.sizes, geo.blocks_pos)
        tracker = PhaseTracker(phase_order).fit(geo.centres, gains)
        eq = np.empty(geo.n_sym, np.complex128)
        _remove_phase(s, tracker.coef, tracker.centre, tracker.scale, 1.0 / max(tracker.gain, 1e-30), eq)
        h = self._block_channel(eq, geo) if geo.pil_idx.size else None
        if h is not None:  # fading: divide out the interpolated channel; the noise is then N0 / |h_k|^2
            eq = eq / h
            # SNR in the faded domain (phase removed, |h| kept): the mean SNR the link sees
            mag = np.abs(h[geo.known_idx])
            est = snr_data_aided(eq[geo.known_idx] * mag, geo.known * mag)
        else:
            est = snr_data_aided(eq[geo.known_idx], geo.known)
        if not (np.isfinite(est.gain) and abs(est.gain) > 1e-30 and np.isfinite(est.n0)):
            raise ValueError("no usable signal on the preamble and pilots (zero or non-finite gain)")
        noise_var = est.n0 / max(abs(est.gain) ** 2, 1e-30)
        per_symbol = None if h is None else noise_var / np.maximum(np.abs(h[geo.data_idx]) ** 2, 1e-12)
        data = np.empty(geo.data_idx.size, np.complex128)
        _gather_scaled(eq, geo.data_idx, 1.0 / est.gain, data)
        return SyncedBurst(
            data=data,
            noise_var=float(noise_var),
            snr_db=est.snr_db,
            evm_rms=est.evm_rms,
            cfo_cpsym=cfo_cpsym + tracker.freq_cpsym(geo.n_sym / 2),
            drift=drift,
            t0_raw=t0_raw + offset,
            noise_var_per_symbol=per_symbol,
        )

    def _block_channel(self, eq: np.ndarray, geo: "_BurstGeometry") -> np.ndarray | None:
        """The residual channel of each symbol, linearly interpolated between the least-squares gains of the
        preamble and the pilot blocks (held flat after the last block), or None when tracking is "poly" or
        ("auto") the pilot blocks show no fading."""
        if self.tracking == "poly" or geo.pil_idx.shape[0] < 2:
            return None
        pil = geo.pilots
        g, n0 = _pilot_block_fit(eq, geo.blocks_pos[1:], pil)
        if self.tracking == "auto" and not fading_detected(g, n0, pil.size):
            return None
        pre = geo.known[: self.fmt.preamble.size]
        g = np.concatenate([[np.vdot(pre, eq[: pre.size]) / np.vdot(pre, pre).real], g])
        k = np.arange(geo.n_sym, dtype=np.float64)
        h = np.interp(k, geo.centres, g.real) + 1j * np.interp(k, geo.centres, g.imag)
        return np.where(np.abs(h) > 1e-6, h, 1e-6)


@dataclass(frozen=True)
class _BurstGeometry:
    """A burst's layout as the synchroniser reads it: n_sym symbols from the preamble on (header_stage: only
    the header's, before the burst length is known), the used data symbols (data_idx), the preamble and
    pilot blocks (blocks_pos, pil_idx [b, L], their centres), every known symbol (known_idx, known,
    known_conj) and the clock-drift view of them (timing)."""

    n_sym: int
    header_stage: bool
    data_idx: np.ndarray
    blocks_pos: np.ndarray
    pil_idx: np.ndarray
    centres: np.ndarray
    known_idx: np.ndarray
    known: np.ndarray
    known_conj: np.ndarray
    pilots: np.ndarray
    timing: _TimingBlocks

    @classmethod
    @lru_cache(maxsize=512)  # per frame format and burst length: every receiver shares them
    def make(cls, fmt, sps: int, n_data: int, n_used: int) -> "_BurstGeometry":
        data_pos, pilot_pos = fmt.layout(n_data)
        last = int(data_pos[n_used - 1]) + 1 if n_used else fmt.preamble.size
        pilot_pos = pilot_pos[pilot_pos < last + fmt.pilot_len]
        if n_used < n_data:  # the header stage: keep only blocks that exist whatever n_data is
            pilot_pos = pilot_pos[pilot_pos + fmt.pilot_len <= last]
        n_sym = int(max(last, pilot_pos.max() + fmt.pilot_len if pilot_pos.size else 0))
        pre, pil = fmt.preamble.astype(np.complex128), fmt.pilots.astype(np.complex128)
        if not pilot_pos.size:
            pil = pil[:0]
        blocks_pos = np.concatenate([[0], pilot_pos]).astype(np.int64)
        pil_idx = blocks_pos[1:, None] + np.arange(pil.size)
        known_blocks = [pre] + [pil] * pilot_pos.size
        known = np.concatenate(known_blocks)
        geo = cls(
            n_sym=n_sym,
            header_stage=n_used < n_data,
            data_idx=np.ascontiguousarray(data_pos[:n_used]),
            blocks_pos=blocks_pos,
            pil_idx=pil_idx,
            centres=np.concatenate([[pre.size / 2 - 0.5], pilot_pos + pil.size / 2 - 0.5]),
            known_idx=np.concatenate([np.arange(pre.size), pil_idx.ravel()]),
            known=known,
            known_conj=np.conj(known),
            pilots=pil,
            timing=_TimingBlocks.make(blocks_pos, known_blocks, sps),
        )
        for a in (geo.data_idx, geo.blocks_pos, geo.pil_idx, geo.centres, geo.known_idx, geo.known, geo.known_conj,
                  geo.pilots):
            a.flags.writeable = False  # shared by every receiver through the cache
        return geo


@numba.njit(cache=True, fastmath=True)  # fastmath: the inlined matched filter's sums vectorise
def _preamble_cfo(xr, xi, bank, t0, sps, pre_conj):
    """The residual carrier offset (cycles per symbol) of the preamble at window time t0, from its 16-symbol
    segments (estimate_cfo_segments)."""
    z = np.empty(pre_conj.size, np.complex128)
    for k in range(pre_conj.size):
        z[k] = _mf_at(xr, xi, t0 + k * sps, bank) * pre_conj[k]
    return _cfo_segments_kernel(z, 16)


@numba.njit(cache=True, fastmath=True)
def _preamble_timing(xr, xi, bank, t0, sps, pre_sym, pre_conj):
    """The preamble's timing correction in samples (its correlation at -1, 0, +1 sample, parabola)."""
    return _timing_error(xr, xi, bank, t0, sps, 0.0, pre_sym, pre_conj, 0, pre_conj.size)[0]


@numba.njit(cache=True)
def _pilot_block_fit(eq, pilot_pos, pil):
    """Least-squares complex gain g_b of every pilot block of eq, and the noise N0 of the residual
    eq - g_b pilots (per symbol, unbiased for the one fitted gain per block)."""
    n_b, n_p = pilot_pos.size, pil.size
    e_pil = 0.0
    for i in range(n_p):
        e_pil += pil[i].real * pil[i].real + pil[i].imag * pil[i].imag
    g = np.empty(n_b, np.complex128)
    res = 0.0
    for b in range(n_b):
        acc = 0j
        for i in range(n_p):
            acc += eq[pilot_pos[b] + i] * pil[i].conjugate()
        g[b] = acc / e_pil
        for i in range(n_p):
            e = eq[pilot_pos[b] + i] - g[b] * pil[i]
            res += e.real * e.real + e.imag * e.imag
    return g, res / (n_b * n_p) * n_p / max(n_p - 1, 1)


@numba.njit(cache=True)
def _gather_scaled(x, idx, scale, out):
    """out[i] = x[idx[i]] * scale."""
    for i in range(idx.size):
        out[i] = x[idx[i]] * scale


@numba.njit(cache=True)
def _block_gains(s, known_conj, starts, sizes, blocks_pos):
    """Mean of s x conj(known) over each known block (the preamble, then every pilot block)."""
    out = np.empty(blocks_pos.size, np.complex128)
    for b in range(blocks_pos.size):
        acc = 0j
        for i in range(sizes[b]):
            acc += s[blocks_pos[b] + i] * known_conj[starts[b] + i]
        out[b] = acc / max(sizes[b], 1)
    return out
