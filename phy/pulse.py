"""Root-raised-cosine pulse shaping: taps, streaming interpolator / matched filter / decimator, resampling.

The streaming blocks keep their filter memory (and the decimator its sample phase) between calls, so a
signal cut into chunks gives exactly the output of one call (GNU Radio semantics).

Gains: taps have unit energy. `RrcInterpolator` scales by sqrt(sps) so unit-energy symbols give unit mean
sample power; `RrcDecimator` divides by sqrt(sps) so that, in the ideal chain, decimated symbols equal the
transmitted ones. With complex white noise of variance sigma2 per sample at the matched filter input, the
decimated symbols carry noise variance sigma2 / sps, i.e. Es/N0 = sps * (sample SNR).
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

__all__ = ["rrc_taps", "rrc_polyphase", "RrcInterpolator", "RrcMatchedFilter", "RrcDecimator", "fractional_resample"]


def rrc_taps(rolloff: float, sps: int, span_symbols: int = 16) -> np.ndarray:
    """Root-raised-cosine impulse response with unit energy.

    Parameters: rolloff in (0, 1]; sps samples per symbol (>= 2); span_symbols filter length in symbols.
    Output: float64 [span_symbols * sps + 1], symmetric, peak at the centre; read-only (computed once per
    parameter set: every receiver built needs them).
    """
    return _rrc_taps(float(rolloff), sps, span_symbols)


def _check_rrc(rolloff: float, sps: int, span_symbols: int) -> None:
    if not 0.0 < rolloff <= 1.0:
        raise ValueError(f"rolloff must be in (0, 1], got {rolloff!r}")
    if int(sps) != sps or sps < 2:
        raise ValueError(f"sps must be an integer >= 2, got {sps!r}")
    if int(span_symbols) != span_symbols or span_symbols < 2 or span_symbols % 2:
        raise ValueError(f"span_symbols must be an even integer >= 2, got {span_symbols!r}")


def _rrc_shape(t: np.ndarray, a: float) -> np.ndarray:
    """The RRC pulse (peak 1 - a + 4 a / pi) at times t in symbols, its removable singularities filled."""
    h = np.empty_like(t)
    centre = np.isclose(t, 0.0)
    sing = np.isclose(np.abs(t), 1.0 / (4.0 * a))
    reg = ~(centre | sing)
    tr = t[reg]
    h[reg] = (np.sin(np.pi * tr * (1 - a)) + 4 * a * tr * np.cos(np.pi * tr * (1 + a))) / (
        np.pi * tr * (1 - (4 * a * tr) ** 2)
    )
    h[centre] = 1.0 - a + 4.0 * a / np.pi
    h[sing] = (a / np.sqrt(2)) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * a)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * a)))
    return h


@lru_cache(maxsize=32)
def _rrc_taps(rolloff: float, sps: int, span_symbols: int) -> np.ndarray:
    _check_rrc(rolloff, sps, span_symbols)
    t = np.arange(-span_symbols * sps // 2, span_symbols * sps // 2 + 1) / sps  # in symbols
    h = _rrc_shape(t, rolloff)
    h /= np.sqrt(np.sum(h**2))
    h.flags.writeable = False
    return h


@lru_cache(maxsize=32)
def rrc_polyphase(rolloff: float, sps: int, span_symbols: int = 16, phases: int = 128) -> np.ndarray:
    """The RRC matched filter at fractional sample offsets: a bank of `phases` + 1 rows.

    Row p holds the weights that give the matched filter's output at t = n + p / phases from samples
    n - d .. n + d (d = span_symbols * sps / 2): w[p, j] = g(p / phases + d - j), g the RRC pulse in samples
    scaled as rrc_taps (row 0 is rrc_taps; the pulse is cut at +-d samples, as the taps are). A receiver
    that needs the filter only at its symbol instants computes one row's dot product per symbol, not the
    filter at every sample plus an interpolation. float32 [phases + 1, 2 d + 1], read-only.
    """
    _check_rrc(float(rolloff), sps, span_symbols)
    d = span_symbols * sps // 2
    j = np.arange(2 * d + 1)
    off = np.arange(phases + 1)[:, None] / phases + d - j[None, :]  # samples
    w = _rrc_shape(off.ravel() / sps, float(rolloff)).reshape(off.shape)
    w[np.abs(off) > d] = 0.0
    w /= np.sqrt(np.sum(w[0] ** 2))  # row 0 is the pulse at whole samples: rrc_taps' energy
    out = w.astype(np.float32)
    out.flags.writeable = False
    return out


class _StreamingFir:
    """FIR filter that keeps its last len(taps)-1 inputs; output n uses inputs n-len+1..n (causal)."""

    def __init__(self, taps: np.ndarray):
        self.taps = np.asarray(taps, dtype=np.complex128)
        self._state = np.zeros(self.taps.size - 1, dtype=np.complex128)

    def reset(self) -> None:
        self._state[:] = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._state, np.asarray(x, dtype=np.complex128)])
        y = np.convolve(buf, self.taps, mode="valid")
        self._state = buf[buf.size - self._state.size :] if self._state.size else self._state
        return y


@numba.njit(cache=True)
def _interpolate_kernel(br, bi, poly, out):
    """out[i sps + p] = sum_j poly[p, j] b[i + n_b - 1 - j], b = br + j bi: each branch's causal FIR at the
    symbol rate over (the last n_b - 1 inputs of the previous call, then this call's). The symbol loop is
    innermost (SIMD); every output still sums its taps in order j = 0, 1, ..."""
    sps, n_b = poly.shape
    n = br.size - n_b + 1
    acc_r, acc_i = np.empty(n), np.empty(n)
    for p in range(sps):
        acc_r[:] = 0.0
        acc_i[:] = 0.0
        for j in range(n_b):
            w, off = poly[p, j], n_b - 1 - j
            for i in range(n):
                acc_r[i] += w * br[i + off]
                acc_i[i] += w * bi[i + off]
        for i in range(n):
            out[i * sps + p] = complex(acc_r[i], acc_i[i])


def _check_1d(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {x.shape}; process one stream per block")
    return x


class RrcInterpolator:
    """Upsample symbols by `sps` and shape them with an RRC pulse (streaming, causal, polyphase).

    Parameters
    ----------
    sps : int
    rolloff : float
    span_symbols : int
        Filter length in symbols; group delay `delay_samples` = span_symbols * sps / 2.

    Input
    -----
    symbols : complex [n]

    Output
    ------
    complex64 [n * sps]; unit-energy symbols give unit mean power. Feed span_symbols / 2 zero symbols at
    the end to flush the last pulses.
    """

    def __init__(self, sps: int, rolloff: float, span_symbols: int = 16):
        self.sps = int(sps)
        self.taps = rrc_taps(rolloff, sps, span_symbols)
        self.delay_samples = (self.taps.size - 1) // 2
        # polyphase branches: output phase p uses taps p, p+sps, ... (row p of _poly)
        n_branch = -(-self.taps.size // self.sps)
        padded = np.zeros(n_branch * self.sps)
        padded[: self.taps.size] = self.taps * np.sqrt(self.sps)
        self._poly = np.ascontiguousarray(padded.reshape(n_branch, self.sps).T)
        self._history = np.zeros(n_branch - 1, np.complex128)  # the last inputs, oldest first

    def reset(self) -> None:
        self._history[:] = 0

    def __call__(self, symbols: np.ndarray) -> np.ndarray:
        x = _check_1d(symbols, "symbols")
        buf = np.concatenate([self._history, x.astype(np.complex128, copy=False)])
        out = np.empty(x.size * self.sps, dtype=np.complex64)
        _interpolate_kernel(np.ascontiguousarray(buf.real), np.ascontiguousarray(buf.imag), self._poly, out)
        if self._history.size:  # the last inputs, for the next call's first outputs
            self._history = buf[buf.size - self._history.size :].copy()
        return out


class RrcMatchedFilter:
    """RRC matched filter at the sample rate (streaming, causal, unit-energy taps).

    Parameters
    ----------
    sps, rolloff, span_symbols : as RrcInterpolator

    Input
    -----
    samples : complex [n]

    Output
    ------
    complex64 [n], delayed by `delay_samples`.
    """

    def __init__(self, sps: int, rolloff: float, span_symbols: int = 16):
        self.sps = int(sps)
        self.taps = rrc_taps(rolloff, sps, span_symbols)
        self.delay_samples = (self.taps.size - 1) // 2
        self._fir = _StreamingFir(self.taps)

    def reset(self) -> None:
        self._fir.reset()

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        return self._fir(_check_1d(samples, "samples")).astype(np.complex64)


class RrcDecimator:
    """RRC matched filter followed by decimation to one sample per symbol (streaming).

    Parameters
    ----------
    sps, rolloff, span_symbols : as RrcInterpolator
    phase : int
        Which sample of each symbol period to keep, counted after both filters' delays (0 = the symbol
        centres of a stream made by RrcInterpolator with the same span).

    Input
    -----
    samples : complex [n]

    Output
    ------
    complex64 symbols scaled by 1 / sqrt(sps) (the transmitted symbols in an ideal chain); the first one
    is the first complete symbol after the start-up transient.
    """

    def __init__(self, sps: int, rolloff: float, span_symbols: int = 16, phase: int = 0):
        if not 0 <= phase < sps:
            raise ValueError(f"phase must be in [0, sps={sps}), got {phase!r}")
        self.mf = RrcMatchedFilter(sps, rolloff, span_symbols)
        self.sps = int(sps)
        # sample n of the filtered stream is a symbol centre when n >= 2*delay + phase, (n - that) % sps == 0
        self._first = 2 * self.mf.delay_samples + phase  # skip the start-up transient of both filters
        self._count = 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        y = self.mf(samples)
        idx = np.arange(self._count, self._count + y.size)
        keep = (idx >= self._first) & ((idx - self._first) % self.sps == 0)
        self._count += y.size
        return (y[keep] / np.sqrt(self.sps)).astype(np.complex64)


@numba.njit(cache=True, fastmath=True)
def _resample_kernel(x, t0, ratio, half_taps, out):
    for n in range(out.size):
        t = t0 + n * ratio
        base = int(np.floor(t))
        mu = t - base
        acc = 0j
        for k in range(-half_taps + 1, half_taps + 1):
            i = base + k
            if 0 <= i < x.size:
                a = k - mu
                w = 1.0 if a == 0.0 else np.sin(np.pi * a) / (np.pi * a)
                w *= 0.42 + 0.5 * np.cos(np.pi * a / half_taps) + 0.08 * np.cos(2 * np.pi * a / half_taps)
                acc += x[i] * w
        out[n] = acc


def fractional_resample(x: np.ndarray, ratio: float, offset_samples: float = 0.0, half_taps: int = 16) -> np.ndarray:
    """Resample a band-limited signal with a Blackman-windowed sinc: y[n] = x(offset_samples + n * ratio).

    `ratio` is input samples per output sample (f_in / f_out): a receiver whose sample clock runs `ppm` fast
    sees ratio = 1 / (1 + ppm * 1e-6). `offset_samples` is the (fractional) input time of the first output sample.
    Not streaming; used by tests and by channel models that keep their own time base.
    Input: complex [n]. Output: complex64 [floor((n - 1 - offset_samples) / ratio) + 1].
    """
    x = _check_1d(x, "x").astype(np.complex128)
    if not 0.5 < ratio < 2.0:
        raise ValueError(f"ratio must be in (0.5, 2), got {ratio!r}")
    n_out = max(int(np.floor((x.size - 1 - offset_samples) / ratio)) + 1, 0)
    out = np.empty(n_out, dtype=np.complex128)
    _resample_kernel(x, float(offset_samples), float(ratio), int(half_taps), out)
    return out.astype(np.complex64)
