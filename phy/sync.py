"""Burst synchronisation: detection, carrier frequency, symbol timing and pilot-aided phase tracking.

Frequencies here are normalised: cycles per sample (`*_cps`) or cycles per symbol (`*_cpsym`);
multiply by the symbol rate for Hz. The chain a burst receiver runs (see phy/link.py):

1. `BurstDetector` on the matched-filtered stream: differentially combined segment correlations with the
   preamble (insensitive to a carrier offset up to 1 / (2 * segment) cycles per symbol), normalised by the
   received energy, against a fixed threshold; gives start, fractional timing and a coarse carrier offset.
2. `estimate_cfo_segments`: fine carrier offset from the slope of the unwrapped phases of preamble segments.
3. `refine_timing`: fractional timing from the correlation with known symbols at +-1 sample (parabola).
4. `estimate_clock_drift`: sample-clock offset from the timing of every pilot block (least-squares line).
5. `PhaseTracker`: complex gain of every pilot block, unwrapped, fitted by a polynomial in time
   (quadratic: phase, residual frequency and a Doppler rate across the burst).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numba
import numpy as np

__all__ = [
    "Rotator",
    "BurstDetector",
    "Detection",
    "interpolate_cubic",
    "estimate_cfo_segments",
    "refine_timing",
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
def _detect_kernel(rr, ri, pre_r, pre_i, seg, sps, n_pos, metric, dsum_r, dsum_i):
    """Metric at positions m of (rr, ri), m < n_pos, all inside: vectorised over blocks of consecutive
    positions (SIMD, unit stride), each position summed in a fixed order (no fastmath), so a position's
    metric does not depend on which call or block computed it."""
    n_pre = pre_r.size
    k_seg = n_pre // seg
    blk = 64
    f4 = rr.dtype  # float32: twice the SIMD lanes of float64 for a threshold test and a coarse angle
    cr, ci = np.empty(blk, f4), np.empty(blk, f4)
    pr_, pi_ = np.empty(blk, f4), np.empty(blk, f4)
    ar, ai, en = np.empty(blk, f4), np.empty(blk, f4), np.empty(blk, f4)
    for m0 in range(0, n_pos, blk):
        mb = min(blk, n_pos - m0)
        for m in range(mb):
            ar[m] = 0.0
            ai[m] = 0.0
            en[m] = 0.0
        for k in range(k_seg):
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
                    en[m] += vr * vr + vi * vi
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

    def metric(self, r: np.ndarray, start: int = 0, stop: int | None = None, stride: int = 1):
        """Metric float64 [m] and differential sums complex128 [m] at n = start, start+stride, ... < stop."""
        r = np.asarray(r)
        stop = r.size if stop is None else stop
        m = len(range(start, stop, stride))
        metric, dsum = np.zeros(m), np.zeros(m, dtype=np.complex128)
        span = (self.pre.size - 1) * self.sps
        first = 0 if start >= 0 else -(-(-start) // stride)  # positions before the stream's start stay 0
        n_in = len(range(start + first * stride, min(stop, r.size - span), stride))
        if n_in > 0:
            a = start + first * stride
            seg = r[a : a + (n_in - 1) * stride + span + 1]
            sps, every = self.sps, 1
            if stride > 1 and self.sps % stride == 0:  # every sample read lies on the grid: take that phase,
                seg, sps = seg[::stride], self.sps // stride  # so the kernel reads contiguously
            elif stride > 1:  # otherwise evaluate every position and keep the grid's
                every, n_all = stride, (n_in - 1) * stride + 1
            n_k = n_in if every == 1 else n_all
            m_k, d_r, d_i = np.zeros(n_k), np.zeros(n_k), np.zeros(n_k)
            _detect_kernel(np.ascontiguousarray(seg.real, dtype=np.float32), np.ascontiguousarray(seg.imag, dtype=np.float32),
                           self._pre_r, self._pre_i, self.segment, sps, n_k, m_k, d_r, d_i)
            metric[first : first + n_in] = m_k[::every]
            dsum.real[first : first + n_in] = d_r[::every]
            dsum.imag[first : first + n_in] = d_i[::every]
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
        pos = max(int(start), 0)
        step = 512  # grows: a burst usually follows the previous one within a guard interval
        while pos < end:
            stop = min(pos + step, end)
            step = min(2 * step, self.window)
            coarse, _ = self.metric(r, pos, stop, 2)  # every other sample: the peak is > 1 sample wide
            hits = np.flatnonzero(coarse > self.threshold)
            if hits.size:
                # a window that only partly overlaps the preamble can cross the threshold at high SNR (its
                # energy is small); the true peak is then within one preamble length: take the maximum there
                n1 = pos + 2 * int(hits[0])
                wide, _ = self.metric(r, n1, min(n1 + self.pre.size * self.sps + 2, last), 2)
                n2 = n1 + 2 * int(np.argmax(wide))
                lo = max(n2 - 3, 0)
                fine, dsum = self.metric(r, lo, min(n2 + 4, last), 1)
                j = int(np.argmax(fine))
                frac = 0.0
                if 0 < j < fine.size - 1:
                    a, b, c = fine[j - 1], fine[j], fine[j + 1]
                    den = a - 2 * b + c
                    frac = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0
                cfo = float(np.angle(dsum[j]) / (2 * np.pi * self.segment))
                return Detection(lo + j, frac, float(fine[j]), cfo)
            pos = stop
        return None


@numba.njit(cache=True, fastmath=True)
def _cubic_at(y, t):
    base = int(np.floor(t))
    mu = t - base
    w = (-mu * (mu - 1) * (mu - 2) / 6, (mu + 1) * (mu - 1) * (mu - 2) / 2,
         -(mu + 1) * mu * (mu - 2) / 2, (mu + 1) * mu * (mu - 1) / 6)  # fmt: skip
    acc = 0j
    for k in range(4):
        i = base - 1 + k
        if 0 <= i < y.size:
            acc += w[k] * y[i]
    return acc


@numba.njit(cache=True, fastmath=True)
def _cubic_kernel(y, t, out):
    for j in range(t.size):
        out[j] = _cubic_at(y, t[j])


def interpolate_cubic(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cubic Lagrange interpolation of y at fractional indices t (zero outside the signal).

    Input: y complex [n]; t float [...]. Output: complex128 shaped like t.
    """
    t = np.asarray(t, dtype=np.float64)
    out = np.empty(t.size, dtype=np.complex128)
    _cubic_kernel(np.ascontiguousarray(y, dtype=np.complex128), np.ascontiguousarray(t.ravel()), out)
    return out.reshape(t.shape)


def estimate_cfo_segments(z: np.ndarray, segment: int = 16) -> float:
    """Frequency (cycles per symbol) of a modulation-free sequence z (received x conj(known)): least-squares
    slope of the unwrapped phases of `segment`-symbol sums. Range +-1 / (2 segment); near the CRLB."""
    z = np.asarray(z)
    k = z.size // segment
    if k < 2:
        raise ValueError(f"need at least {2 * segment} symbols to estimate a frequency, got {z.size}")
    sums = z[: k * segment].reshape(k, segment).sum(axis=1)
    phase = np.unwrap(np.angle(sums))
    t = (np.arange(k) + 0.5) * segment
    t = t - t.mean()
    return float(np.sum(t * (phase - phase.mean())) / np.sum(t * t) / (2 * np.pi))


def _parabola_peak(a: float, b: float, c: float) -> float:
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -1.0, 1.0)) if den < 0 else 0.0


def refine_timing(y: np.ndarray, t: np.ndarray, known: np.ndarray, step: float = 1.0) -> float:
    """Timing correction (samples) that maximises |sum y(t + d) conj(known)|, from d in {-step, 0, +step}.

    y: matched-filtered samples; t: fractional sample positions of the known symbols [n]; known [n].
    """
    mags = [abs(np.vdot(known, interpolate_cubic(y, t + d))) for d in (-step, 0.0, step)]
    return step * _parabola_peak(*mags)


@numba.njit(cache=True)
def _batch_timing_pass(y, t0, sps, offset, drift, sym, ref, starts, sizes, x, min_span, max_slope):
    """One batch pass of estimate_clock_drift in one kernel: every block's timing error where the line
    (offset, drift) puts it (parabola through |correlation| at -1, 0, +1 sample), then the line through
    them weighted by the squared correlation; the slope stays 0 until the blocks span `min_span` samples
    (over a short span timing noise would give a wild slope, which extrapolation would amplify)."""
    n_b = starts.size
    err, w = np.empty(n_b), np.empty(n_b)
    for b in range(n_b):
        m = np.zeros(3)
        for di in range(3):
            acc = 0j
            for j in range(starts[b], starts[b] + sizes[b]):
                acc += _cubic_at(y, t0 + offset + sym[j] * sps * (1 + drift) + (di - 1.0)) * ref[j]
            m[di] = abs(acc)
        den = m[0] - 2 * m[1] + m[2]
        err[b] = min(max(0.5 * (m[0] - m[2]) / den, -1.0), 1.0) if den < 0 else 0.0
        w[b] = m[1] * m[1] + 1e-30
    e = offset + drift * x + err
    sw = w.sum()
    xm, em = (w * x).sum() / sw, (w * e).sum() / sw
    slope = 0.0
    if n_b > 1 and x.max() - x.min() >= min_span:
        slope = (w * (x - xm) * (e - em)).sum() / max((w * (x - xm) ** 2).sum(), 1e-12)
    slope = min(max(slope, -max_slope), max_slope)  # beyond any oscillator: a bad fit
    return em - slope * xm, slope


@numba.njit(cache=True, fastmath=True)
def _sequential_timing(y, t0, sps, order, sym, ref, starts, sizes, x, min_span, max_slope):
    """Visit blocks in `order`; measure each where the running weighted line predicts it; refit."""
    offset, drift = 0.0, 0.0
    sw = swx = swe = swxx = swxe = 0.0
    xmin, xmax = 1e300, -1e300
    m = np.zeros(3)
    for b in order:
        for di in range(3):
            acc = 0j
            for j in range(starts[b], starts[b] + sizes[b]):
                acc += _cubic_at(y, t0 + offset + sym[j] * sps * (1 + drift) + (di - 1.0)) * ref[j]
            m[di] = abs(acc)
        den = m[0] - 2 * m[1] + m[2]
        err = min(max(0.5 * (m[0] - m[2]) / den, -1.0), 1.0) if den < 0 else 0.0
        e = offset + drift * x[b] + err
        wb = m[1] * m[1] + 1e-30
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
    y: np.ndarray,
    t0: float,
    sps: int,
    block_pos: np.ndarray,
    known_blocks: list[np.ndarray],
    passes: int = 2,
    min_span_symbols: int = 1000,
) -> tuple[float, float]:
    """Timing offset (samples) and sample-clock offset (fractional, e.g. 50e-6) from known symbol blocks.

    Symbol k of the burst is assumed at t0 + offset + k sps (1 + drift); block b's known symbols
    known_blocks[b] start at symbol block_pos[b]. The blocks are first visited in order, each measured
    (parabola through |correlation| at -1, 0, +1 sample) where the line fitted so far predicts it, so a drift
    of several samples over a long burst stays inside the +-1 sample capture range; then `passes` batch
    passes refine the line. Fits are least squares weighted by each block's squared correlation (its SNR);
    the drift stays 0 until the blocks measured span `min_span_symbols`.
    """
    block_pos = np.asarray(block_pos, dtype=np.float64)
    if block_pos.size < 2:
        return 0.0, 0.0
    sizes = np.array([kb.size for kb in known_blocks])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sym = np.repeat(block_pos - starts, sizes) + np.arange(sizes.sum())  # symbol index of every known symbol
    ref = np.conj(np.concatenate(known_blocks)).astype(np.complex128)
    x = (block_pos + sizes / 2) * sps
    offset, drift = _sequential_timing(
        np.ascontiguousarray(y, dtype=np.complex128), float(t0), float(sps), np.argsort(block_pos), sym, ref,
        starts.astype(np.int64), sizes.astype(np.int64), x, float(min_span_symbols * sps), 500e-6,
    )  # fmt: skip
    y = np.ascontiguousarray(y, dtype=np.complex128)
    for _ in range(passes):
        offset, drift = _batch_timing_pass(y, float(t0), float(sps), offset, drift, sym, ref, starts.astype(np.int64),
                                           sizes.astype(np.int64), x, float(min_span_symbols * sps), 500e-6)
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
    fits here are of order <= 2 on |x| <= 1, well conditioned, and this costs microseconds, not polyfit's
    hundred."""
    n = order + 1
    m = np.zeros((n, n))
    v = np.zeros(n)
    for i in range(x.size):
        w2 = w[i] * w[i]
        p = np.ones(n)  # x^0 .. x^order
        for a in range(1, n):
            p[a] = p[a - 1] * x[i]
        for a in range(n):
            v[a] += w2 * p[a] * y[i]
            for b in range(n):
                m[a, b] += w2 * p[a] * p[b]
    c = np.linalg.solve(m, v)
    return c[::-1].copy()


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
        centres = np.asarray(centres, dtype=np.float64)
        gains = np.asarray(gains)
        # up to 2 blocks: interpolate; beyond: keep a spare block so that noise is not fitted
        order = min(self.order, centres.size - 1 if centres.size <= 2 else centres.size - 2)
        phase = _unwrap_predicted(centres, np.angle(gains).astype(np.float64))
        w = np.abs(gains)
        self.gain = float(np.mean(w)) if w.size else 1.0
        self.centre = float(centres.mean())
        self.scale = float(max(np.ptp(centres), 1.0))
        x = (centres - self.centre) / self.scale
        self.coef = _weighted_polyfit(x, phase, order, w + 1e-12) if order >= 1 else np.array([phase.mean()])
        return self

    def phase(self, k: np.ndarray) -> np.ndarray:
        return np.polyval(self.coef, (np.asarray(k, dtype=np.float64) - self.centre) / self.scale)

    def freq_cpsym(self, k: float) -> float:
        d = np.polyder(self.coef) if self.coef.size > 1 else np.zeros(1)
        return float(np.polyval(d, (k - self.centre) / self.scale) / self.scale / (2 * np.pi))


@numba.njit(cache=True, fastmath=True)
def _derotate(raw, a, t_ref, f_cps, out):
    """out[i] = raw[a + i] exp(-j 2 pi f (a + i - t_ref)): exact cos/sin every 64 samples (the phase reduced
    modulo one cycle), a complex rotation by one sample's step in between."""
    step_ph = -2.0 * np.pi * f_cps
    step = complex(np.cos(step_ph), np.sin(step_ph))
    for i0 in range(0, out.size, 64):
        cyc = f_cps * (a + i0 - t_ref)
        ph = -2.0 * np.pi * (cyc - np.floor(cyc))
        w = complex(np.cos(ph), np.sin(ph))
        for i in range(i0, min(i0 + 64, out.size)):
            out[i] = raw[a + i] * w
            w *= step


@numba.njit(cache=True)
def _fir_same_kernel(xf, taps, delay, outf):
    # "same"-mode FIR on float views (re, im interleaved), in blocks of output that stay in L1; four taps per
    # pass (one store per four multiply-adds), the tap loop outside the sample loop so the inner loop is SIMD
    n2 = outf.size
    n_t = taps.size
    for b0 in range(0, n2, 2048):
        b1 = min(b0 + 2048, n2)
        for j in range(b0, b1):
            outf[j] = 0.0
        for k in range(0, n_t, 4):
            kk = min(k + 4, n_t)
            # out[n] += taps[k] x[n + delay - k]: sample n exists for max(0, k - delay) <= n < n2/2 + k - delay
            lo = max(b0, 2 * (kk - 1 - delay))
            hi = min(b1, n2 + 2 * (k - delay))
            if kk - k == 4 and hi > lo:
                o = outf[lo:hi]
                x0 = xf[lo + 2 * (delay - k) : hi + 2 * (delay - k)]
                x1 = xf[lo + 2 * (delay - k - 1) : hi + 2 * (delay - k - 1)]
                x2 = xf[lo + 2 * (delay - k - 2) : hi + 2 * (delay - k - 2)]
                x3 = xf[lo + 2 * (delay - k - 3) : hi + 2 * (delay - k - 3)]
                t0, t1, t2, t3 = taps[k], taps[k + 1], taps[k + 2], taps[k + 3]
                for j in range(hi - lo):
                    o[j] = o[j] + (t0 * x0[j] + t1 * x1[j] + t2 * x2[j] + t3 * x3[j])
            else:
                lo = hi = b0
            for q in range(k, kk):  # the edges a group does not cover, one tap at a time
                sh = 2 * (delay - q)
                a, b = max(b0, -sh), min(b1, n2 - sh)
                for j in range(a, min(b, lo)):
                    outf[j] = outf[j] + taps[q] * xf[j + sh]
                for j in range(max(a, hi), b):
                    outf[j] = outf[j] + taps[q] * xf[j + sh]


def fir_same(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """np.convolve(x, taps, mode="same") (scipy's "same": len(x) samples) for complex x and real taps, in
    SIMD; complex64 x is filtered in float32 (twice the lanes), complex128 in float64."""
    x = np.ascontiguousarray(x)
    if x.dtype != np.complex64:
        x = x.astype(np.complex128, copy=False)
    out = np.empty(x.size, x.dtype)
    if x.size:
        real = np.float32 if x.dtype == np.complex64 else np.float64
        _fir_same_kernel(x.view(real), np.ascontiguousarray(taps, dtype=real), (taps.size - 1) // 2, out.view(real))
    return out


@numba.njit(cache=True)
def _remove_phase(s, coef, centre, scale, inv_gain, out):
    """out[k] = s[k] exp(-j phase(k)) inv_gain, phase(k) = polyval(coef, (k - centre) / scale) (Horner): one
    pass instead of numpy's five (polyval, multiply, complex exp, multiply, divide)."""
    for k in range(out.size):
        x = (k - centre) / scale
        ph = 0.0
        for c in coef:
            ph = ph * x + c
        out[k] = s[k] * complex(np.cos(ph), -np.sin(ph)) * inv_gain


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
        if self.noise_var_per_symbol is None:
            return np.full(self.data.size, max(self.noise_var, 1e-9))
        return np.maximum(self.noise_var_per_symbol, 1e-9)


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
        from sagin_hil.phy.pulse import rrc_taps

        if tracking not in ("auto", "poly", "block"):
            raise ValueError(f"tracking {tracking!r}: choose 'auto', 'poly' or 'block'")
        self.tracking = tracking
        from sagin_hil.phy.stage_clock import StageClock

        self.clock = StageClock()  # the receiver shares its own: synchronisation vs equalisation time
        self.fmt, self.sps, self.track_clock = fmt, int(sps), bool(track_clock)
        self.taps = rrc_taps(rolloff, sps, span_symbols)
        self.mf_delay = (self.taps.size - 1) // 2

    def _window(self, raw: np.ndarray, t0_raw: float, cfo_cps: float, n_symbols: int):
        """Matched-filtered, derotated raw[a:b] and the window time of preamble symbol 0."""
        pad = self.taps.size + 8
        a = max(int(np.floor(t0_raw)) - pad, 0)
        b = min(int(np.ceil(t0_raw + n_symbols * self.sps * (1 + 1e-3))) + pad, raw.size)
        # derotated and filtered in complex64 (float32 lanes: twice as many per instruction; the rounding,
        # about 1e-7, lies 70 dB under the noise of any burst worth reading), then back to complex128
        seg = np.empty(max(b - a, 0), dtype=np.complex64)
        _derotate(raw, a, t0_raw, cfo_cps, seg)
        return fir_same(seg, self.taps).astype(np.complex128), t0_raw - a

    def acquire(self, raw: np.ndarray, index_mf: int, frac: float, cfo_cpsym: float) -> tuple[float, float]:
        """Fine carrier offset and preamble timing from a detection at causal-matched-filter index
        `index_mf` (+ frac). Output: (t0_raw, cfo_cpsym) refined."""
        pre = self.fmt.preamble.astype(np.complex128)
        t0_raw = index_mf + frac - self.mf_delay
        k = np.arange(pre.size)
        y, t0 = self._window(raw, t0_raw, cfo_cpsym / self.sps, pre.size + 4)
        z = interpolate_cubic(y, t0 + k * self.sps) * np.conj(pre)
        d_cfo = estimate_cfo_segments(z, 16)
        cfo_cpsym += d_cfo
        # the residual is small (< 1 % of the symbol rate): rotate the filtered samples, no need to refilter
        y = y * np.exp(-2j * np.pi * d_cfo / self.sps * (np.arange(y.size) - t0))
        t0_raw += refine_timing(y, t0 + k * self.sps, pre)
        return t0_raw, cfo_cpsym

    def symbols(self, raw: np.ndarray, t0_raw: float, cfo_cpsym: float, n_data: int, n_used: int | None = None) -> SyncedBurst:
        """Equalised data symbols [:n_used] of a burst carrying n_data data symbols (pilot blocks after
        the last used data symbol are ignored, so the header can be read before n_data is known)."""
        fmt = self.fmt
        n_used = n_data if n_used is None else min(n_used, n_data)
        data_pos, pilot_pos = fmt.layout(n_data)
        last = int(data_pos[n_used - 1]) + 1 if n_used else fmt.preamble.size
        pilot_pos = pilot_pos[pilot_pos < last + fmt.pilot_len]
        if n_used < n_data:  # the header stage: keep only blocks that exist whatever n_data is
            pilot_pos = pilot_pos[pilot_pos + fmt.pilot_len <= last]
        n_sym = int(max(last, pilot_pos.max() + fmt.pilot_len if pilot_pos.size else 0))
        with self.clock("synchronisation"):
            s, offset, drift, blocks_pos, known = self._timed_symbols(raw, t0_raw, cfo_cpsym, pilot_pos, n_sym)
        with self.clock("equalisation"):
            return self._equalise(s, offset, drift, blocks_pos, known, data_pos, n_used, n_sym, t0_raw, cfo_cpsym)

    def _timed_symbols(self, raw, t0_raw, cfo_cpsym, pilot_pos, n_sym):
        """Matched-filtered symbols [n_sym] at the timing (offset, clock drift) measured on the known blocks."""
        fmt, sps = self.fmt, self.sps
        y, t0 = self._window(raw, t0_raw, cfo_cpsym / sps, n_sym + 4)
        pre, pil = fmt.preamble.astype(np.complex128), fmt.pilots.astype(np.complex128)
        blocks_pos = np.concatenate([[0], pilot_pos])
        known = [pre] + [pil] * pilot_pos.size
        offset, drift = 0.0, 0.0
        if self.track_clock and pilot_pos.size >= 2:
            offset, drift = estimate_clock_drift(y, t0, sps, blocks_pos, known)
        s = interpolate_cubic(y, t0 + offset + np.arange(n_sym) * sps * (1 + drift))
        return s, offset, drift, blocks_pos, known

    def _equalise(self, s, offset, drift, blocks_pos, known, data_pos, n_used, n_sym, t0_raw, cfo_cpsym):
        """Pilot-aided phase and gain removed, SNR measured: the SyncedBurst."""
        # known[0] is the preamble at 0, the rest are equal pilot blocks: their gains in one product
        pre, pil = known[0], known[1] if len(known) > 1 else known[0][:0]
        pil_idx = blocks_pos[1:, None].astype(np.int64) + np.arange(pil.size)
        centres = np.concatenate([[pre.size / 2 - 0.5], blocks_pos[1:] + pil.size / 2 - 0.5])
        gains = np.concatenate([[np.vdot(pre, s[: pre.size]) / pre.size], s[pil_idx] @ np.conj(pil) / max(pil.size, 1)])
        tracker = PhaseTracker(2).fit(centres, gains)
        eq = np.empty(n_sym, np.complex128)
        _remove_phase(s, tracker.coef, tracker.centre, tracker.scale, 1.0 / max(tracker.gain, 1e-30), eq)
        known_idx = np.concatenate([np.arange(pre.size), pil_idx.ravel()])
        from sagin_hil.phy.estimation import snr_data_aided

        h = self._block_channel(eq, pre, pil, pil_idx, centres, n_sym) if pil.size else None
        if h is not None:  # fading: divide out the interpolated channel; the noise is then N0 / |h_k|^2
            eq = eq / h
            # SNR in the faded domain (phase removed, |h| kept): the mean SNR the link sees
            est = snr_data_aided(eq[known_idx] * np.abs(h[known_idx]), np.concatenate(known) * np.abs(h[known_idx]))
        else:
            est = snr_data_aided(eq[known_idx], np.concatenate(known))
        if not (np.isfinite(est.gain) and abs(est.gain) > 1e-30 and np.isfinite(est.n0)):
            raise ValueError("no usable signal on the preamble and pilots (zero or non-finite gain)")
        noise_var = est.n0 / max(abs(est.gain) ** 2, 1e-30)
        per_symbol = None if h is None else noise_var / np.maximum(np.abs(h[data_pos[:n_used]]) ** 2, 1e-12)
        return SyncedBurst(
            data=eq[data_pos[:n_used]] / est.gain,
            noise_var=float(noise_var),
            snr_db=est.snr_db,
            evm_rms=est.evm_rms,
            cfo_cpsym=cfo_cpsym + tracker.freq_cpsym(n_sym / 2),
            drift=drift,
            t0_raw=t0_raw + offset,
            noise_var_per_symbol=per_symbol,
        )

    def _block_channel(self, eq: np.ndarray, pre: np.ndarray, pil: np.ndarray, pil_idx: np.ndarray,
                       centres: np.ndarray, n_sym: int) -> np.ndarray | None:
        """The residual channel of each symbol, linearly interpolated between the least-squares gains of the
        preamble and the pilot blocks (held flat after the last block), or None when tracking is "poly" or
        ("auto") the pilot blocks show no fading."""
        if self.tracking == "poly" or pil_idx.shape[0] < 2:
            return None
        g = eq[pil_idx] @ np.conj(pil) / np.vdot(pil, pil).real
        resid = eq[pil_idx] - g[:, None] * pil
        n0 = float(np.mean(np.abs(resid) ** 2)) * pil.size / max(pil.size - 1, 1)
        if self.tracking == "auto" and not fading_detected(g, n0, pil.size):
            return None
        g = np.concatenate([[np.vdot(pre, eq[: pre.size]) / np.vdot(pre, pre).real], g])
        k = np.arange(n_sym, dtype=np.float64)
        h = np.interp(k, centres, g.real) + 1j * np.interp(k, centres, g.imag)
        return np.where(np.abs(h) > 1e-6, h, 1e-6)
