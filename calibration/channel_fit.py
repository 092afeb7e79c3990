"""Channel parameters estimated from a recording of bursts with a known preamble (`sagin-hil calibrate channel`).

The recording is SigMF (cf32 samples). Every burst starts with a known preamble: this project's 256-symbol
BPSK m-sequence, or one the recording describes (global "sagin:preamble" as [[re, im], ...] with
"sagin:sps" and "sagin:rolloff"). Per burst, on the root-raised-cosine matched-filtered samples:

- detection and fractional timing (phy.sync.BurstDetector, refined by a parabola on the correlation peak);
- frequency offset from the phase slope across the preamble's 16-symbol segments;
- complex gain h (least squares on the derotated preamble, as a line in time read at the preamble's centre)
  and noise variance (the residual).

Across bursts (t = arrival time from the start of the recording):

- delay: arrival minus the burst's transmit sample (annotations "sagin:tx_sample", which our runs write),
  less the two pulse filters' delay; a line fit gives the delay at t = 0 and its rate tau';
- Doppler from the delay rate, f_D = -f_c tau' (the time compression of the whole signal, which an
  oscillator offset does not cause; the recording's sample clock is the reference); Doppler rate = the
  slope of the bursts' frequency offsets; CFO = their mean less the Doppler;
- SNR = Es/N0 = E|h|^2 / N0 (N0 the residual variance of the unit-energy matched filter);
- Rician K by moments (Greenstein): Omega = E|h|^2, V = Var|h|^2, LoS power L = sqrt(Omega^2 - V), K = L /
  (Omega - L), both corrected for the gain estimates' own noise;
- maximum Doppler of the fading from the intensity autocovariance C(tau) = 2 L r(tau) + r(tau)^2 with
  Jakes' r(tau) = Omega_d J0(2 pi f_m tau), fitted over lags where r > 0.2 Omega_d.

When the captures carry the ephemeris' delay and Doppler (sagin:predicted_delay_s, sagin:predicted_doppler_hz,
as runs record them), both are taken out before the line fits and put back after, so the bursts of a whole
pass fit like those of a short straight stretch; the delay prediction also resolves delays longer than the
burst spacing.

Intervals: 95 % from the line fits' standard errors (delay, Doppler, rate, CFO) and a moving-block bootstrap
over bursts (SNR, K, f_m). Without transmit samples there is no delay, and the Doppler and the CFO cannot
be told apart: the total offset is reported as the Doppler and the CFO as unknown (null).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Recording", "read_recording", "BurstTable", "measure_bursts", "fit_channel", "ChannelFit",
           "FIT_KEYS", "reference_offset_samples"]

FIT_KEYS = ("snr_db", "cfo_hz", "doppler_hz", "doppler_rate_hz_s", "delay_samples", "k_factor_db", "max_doppler_hz")
SEGMENT = 16  # preamble symbols per coherent segment in the frequency estimate
ECHO_LAGS = (-2, -1, 1, 2, 3)  # symbol lags where the echo ratio looks for multipath
DEFAULT_SPS, DEFAULT_ROLLOFF, SPAN_SYMBOLS = 4, 0.25, 16


@dataclass
class Recording:
    """A SigMF recording: samples (memory-mapped), sample rate, carrier, capture segments [(start, count)],
    per burst its transmit sample (annotations), and the waveform's preamble, sps and roll-off."""

    path: Path
    samples: np.ndarray
    sample_rate_hz: float
    carrier_hz: float | None
    segments: list[tuple[int, int]]
    segment_time_s: np.ndarray  # per segment: when its first sample was received (s; captures' sagin:time_s)
    predicted_delay_s: np.ndarray  # per segment: the ephemeris' delay (the capture's sagin:predicted_delay_s, 0)
    predicted_doppler_hz: np.ndarray  # per segment, likewise (sagin:predicted_doppler_hz)
    tx_samples: np.ndarray
    preamble: np.ndarray
    sps: int
    rolloff: float
    meta: dict[str, Any] = field(default_factory=dict)


def read_recording(path: str | os.PathLike) -> Recording:
    """Open NAME.sigmf-meta / NAME.sigmf-data (either path or the base name); a missing or malformed part is
    named with what to fix."""
    from sagin_hil.calibration.recordings import recording_paths
    from sagin_hil.phy.frame import preamble_symbols

    meta_path, data_path = recording_paths(path)
    for p in (meta_path, data_path):
        if not p.exists():
            raise ValueError(f"recording {path}: {p} does not exist (a SigMF recording is NAME.sigmf-meta + "
                             "NAME.sigmf-data)")
    try:
        meta = json.loads(meta_path.read_text())
        glob = meta["global"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{meta_path}: not SigMF metadata ({exc}); it needs a 'global' section") from None
    if glob.get("core:datatype", "cf32_le") != "cf32_le":
        raise ValueError(f"{meta_path}: core:datatype {glob.get('core:datatype')!r}; only cf32_le is read")
    fs = glob.get("core:sample_rate")
    if not isinstance(fs, (int, float)) or fs <= 0:
        raise ValueError(f"{meta_path}: global core:sample_rate = {fs!r}; give the sample rate in samples/s")
    samples = np.memmap(data_path, dtype="<c8", mode="r")
    caps = sorted(meta.get("captures") or [{"core:sample_start": 0}], key=lambda c: c.get("core:sample_start", 0))
    starts = [int(c.get("core:sample_start", 0)) for c in caps] + [samples.size]
    segments = [(a, b - a) for a, b in zip(starts, starts[1:]) if b > a]
    kept = [c for c, a, b in zip(caps, starts, starts[1:]) if b > a]
    default_delay = float(glob.get("sagin:predicted_delay_s", 0.0))
    pred_delay = np.array([float(c.get("sagin:predicted_delay_s", default_delay)) for c in kept])
    pred_doppler = np.array([float(c.get("sagin:predicted_doppler_hz", 0.0)) for c in kept])
    # capture times: ours say sagin:time_s; otherwise the captures are taken as back to back
    seg_time = np.array([float(c.get("sagin:time_s", a / float(fs))) for c, (a, _) in zip(kept, segments)])
    carriers = {c.get("core:frequency") for c in caps if c.get("core:frequency") is not None}
    if len(carriers) > 1:
        raise ValueError(f"{meta_path}: captures at {sorted(carriers)} Hz; calibrate one carrier per recording")
    tx = [a.get("sagin:tx_sample") for a in meta.get("annotations", []) if a.get("core:label") == "burst"]
    pre = glob.get("sagin:preamble")
    preamble = (np.asarray([complex(re, im) for re, im in pre], np.complex64) if pre is not None
                else preamble_symbols())
    return Recording(meta_path, samples, float(fs), carriers.pop() if carriers else None, segments, seg_time, pred_delay,
                     pred_doppler, np.asarray([np.nan if v is None else v for v in tx], float), preamble,
                     int(glob.get("sagin:sps", DEFAULT_SPS)), float(glob.get("sagin:rolloff", DEFAULT_ROLLOFF)), meta)


@dataclass
class BurstTable:
    """Per detected burst: arrival (fractional sample of the first preamble symbol in the matched-filtered
    recording), frequency offset (Hz), complex gain, noise variance per symbol, and its transmit sample (nan
    when the recording does not say)."""

    arrival: np.ndarray
    freq_hz: np.ndarray
    gain: np.ndarray
    noise_var: np.ndarray
    tx_sample: np.ndarray
    segment: np.ndarray  # index of the capture segment each burst is in (lags never cross segments)
    echo: np.ndarray  # multipath: correlation power 1-3 symbols off the preamble's peak over the peak's


def _matched_filter(x: np.ndarray, sps: int, rolloff: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    from sagin_hil.phy.pulse import rrc_taps

    return fftconvolve(np.asarray(x, np.complex128), rrc_taps(rolloff, sps, SPAN_SYMBOLS), mode="full")


def _taps_delayed(sps: int, rolloff: float, delay: float) -> np.ndarray:
    """The unit-energy RRC matched filter delayed by `delay` samples (|delay| <= 1), by an FFT phase ramp on
    its zero-padded taps (they are band-limited and vanish at the ends, so the shift is exact to ~1e-6)."""
    spectrum, f, n_taps = _padded_taps_spectrum(sps, rolloff)
    return np.fft.ifft(spectrum * np.exp(-2j * np.pi * f * delay))[4 * sps: 4 * sps + n_taps]


@functools.lru_cache(maxsize=8)
def _padded_taps_spectrum(sps: int, rolloff: float) -> tuple[np.ndarray, np.ndarray, int]:
    """FFT of the matched filter zero-padded by 4 sps each side, its frequencies, and the tap count (every
    burst's timing search delays the same filter many times)."""
    from sagin_hil.phy.pulse import rrc_taps

    taps = rrc_taps(rolloff, sps, SPAN_SYMBOLS)
    padded = np.concatenate([np.zeros(4 * sps), taps, np.zeros(4 * sps)])
    return np.fft.fft(padded), np.fft.fftfreq(padded.size), taps.size


def _fine(x: np.ndarray, t0: float, cfo_cpsym: float, pre: np.ndarray, sps: int, rolloff: float):
    """Refined (start, cycles per symbol, gain, noise variance, echo ratio) of the burst whose preamble starts
    near t0 of the matched-filtered stream of the raw samples x. The echo ratio is the power the preamble's
    correlation finds 1-3 symbols before and after its peak, relative to the peak: multipath. The raw window is derotated by the frequency estimate
    before a matched filter delayed to the timing estimate, so neither a large offset (which would push the
    spectrum out of the filter) nor a fractional timing (which an interpolator would blur) costs signal."""
    n = np.arange(pre.size)
    seg = n.size // SEGMENT
    span = SPAN_SYMBOLS * sps  # taps - 1
    i0 = int(math.floor(t0))
    a = max(i0 - span - (4 + max(ECHO_LAGS)) * sps, 0)
    b = min(i0 + (pre.size + 4 + max(ECHO_LAGS)) * sps, x.size)
    raw = np.asarray(x[a:b], np.complex128)

    def corr(t: float, c: float) -> np.ndarray:
        k = int(math.floor(t))
        rot = raw * np.exp(-2j * np.pi * (c / sps) * np.arange(raw.size))
        y = np.convolve(rot, _taps_delayed(sps, rolloff, -(t - k)))  # y[j] = MF output at a + j + (t - k)
        idx = k - a + n * sps
        ok = (idx >= 0) & (idx < y.size)
        z = np.zeros(pre.size, np.complex128)
        z[ok] = y[idx[ok]]
        return z * np.conj(pre) * np.exp(-2j * np.pi * c * (k - a) / sps)

    c = cfo_cpsym
    for _ in range(3):
        # frequency: the phase slope across the segments' sums (weighted line fit on the unwrapped phase)
        w = corr(t0, c)[: seg * SEGMENT].reshape(seg, SEGMENT).sum(1)
        ph = np.unwrap(np.angle(w))
        xs = np.arange(seg) * SEGMENT + (SEGMENT - 1) / 2
        wt = np.abs(w) ** 2
        xm, pm = np.average(xs, weights=wt), np.average(ph, weights=wt)
        c += float(np.sum(wt * (xs - xm) * (ph - pm)) / np.sum(wt * (xs - xm) ** 2)) / (2 * np.pi)
        # timing: the correlation peak over +-1/2 sample, a parabola through three points
        m = [abs(corr(t0 + d, c).sum()) for d in (-0.5, 0.0, 0.5)]
        den = m[0] - 2 * m[1] + m[2]
        if den < 0:
            t0 += float(np.clip(0.25 * (m[0] - m[2]) / den, -0.5, 0.5))
    # the gain as a line across the preamble (the fading moves within a burst), read at its centre; the
    # noise from what the line leaves (2 complex parameters fitted)
    g = corr(t0, c)
    u = n - n.mean()
    h = np.mean(g)
    slope = np.sum(g * u) / np.sum(u * u)
    noise = float(np.sum(np.abs(g - h - slope * u) ** 2) / (pre.size - 2))
    echo = sum(abs(np.mean(corr(t0 + lag * sps, c))) ** 2 for lag in ECHO_LAGS) / max(abs(h) ** 2, 1e-30)
    return t0, c, h, noise, float(echo)


def measure_bursts(rec: Recording, threshold: float = 0.3) -> BurstTable:
    """Detect and measure every burst of the recording's capture segments (BurstTable)."""
    from sagin_hil.phy.sync import BurstDetector

    pre = np.asarray(rec.preamble, np.complex128)
    det = BurstDetector(pre, rec.sps, threshold=threshold)
    rows: list[tuple] = []
    for s_idx, (start, count) in enumerate(rec.segments):
        x = np.asarray(rec.samples[start:start + count])
        y = _matched_filter(x, rec.sps, rec.rolloff)
        pos = 0
        while True:
            d = det.find(y, pos)
            if d is None:
                break
            t0, c, h, noise, echo = _fine(x, d.index + d.frac, d.cfo_cpsym, pre, rec.sps, rec.rolloff)
            rows.append((start + t0, c * rec.sample_rate_hz / rec.sps, h, noise, s_idx, echo))
            pos = d.index + pre.size * rec.sps
    if not rows:
        raise ValueError(f"{rec.path}: no burst found (threshold {threshold}); is the preamble right? "
                         "Bursts need this project's preamble or a global sagin:preamble with sagin:sps")
    arrival, freq, gain, noise, seg, echo = (np.array(v) for v in zip(*rows))
    seg = seg.astype(int)
    return BurstTable(arrival, freq, gain.astype(complex), noise, _match_tx(arrival, seg, rec), seg, echo)


def reference_offset_samples(sps: int, rolloff: float) -> float:
    """Where the first preamble symbol sits in the matched-filtered stream of a burst sent at sample 0 with no
    channel: the transmit and receive pulse filters' delay (SPAN_SYMBOLS x sps for two of them)."""
    return float(SPAN_SYMBOLS * sps)


def _match_tx(arrival: np.ndarray, segment: np.ndarray, rec: Recording) -> np.ndarray:
    """Each detected burst's transmit sample: the annotated one nearest its arrival less the predicted delay
    (the capture's sagin:predicted_delay_s, else the global one, else 0), nan if none. Delays are therefore
    resolved modulo the burst spacing around the prediction."""
    tx = np.sort(rec.tx_samples[np.isfinite(rec.tx_samples)])
    if tx.size == 0:
        return np.full(arrival.shape, np.nan)
    hint = rec.predicted_delay_s[segment] * rec.sample_rate_hz
    ref = arrival - reference_offset_samples(rec.sps, rec.rolloff) - hint
    i = np.searchsorted(tx, ref + 0.5 * np.median(np.diff(tx)) if tx.size > 1 else ref + 0.5, side="right") - 1
    return np.where(i >= 0, tx[np.clip(i, 0, None)], np.nan)


@dataclass
class ChannelFit:
    """The fitted parameters: key -> {"value", "ci95": [lo, hi]} (None where not identifiable) and notes."""

    values: dict[str, dict[str, Any]]
    notes: list[str]
    bursts: int
    duration_s: float

    def value(self, key: str) -> float | None:
        return self.values[key]["value"]

    def to_json(self) -> dict[str, Any]:
        return {**self.values, "bursts": self.bursts, "duration_s": self.duration_s, "notes": self.notes}


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Robust least-squares line y = a + b x: (a, b, se_a, se_b); points beyond 5 MADs of the residual dropped."""
    keep = np.ones(x.size, bool)
    for _ in range(3):
        A = np.vstack([np.ones(keep.sum()), x[keep]]).T
        coef, *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        r = y - (coef[0] + coef[1] * x)
        mad = np.median(np.abs(r[keep] - np.median(r[keep]))) * 1.4826
        new = np.abs(r) <= max(5 * mad, 1e-12)
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    A = np.vstack([np.ones(keep.sum()), x[keep]]).T
    coef, *_ = np.linalg.lstsq(A, y[keep], rcond=None)
    r = y[keep] - A @ coef
    dof = max(keep.sum() - 2, 1)
    cov = np.linalg.pinv(A.T @ A) * float(r @ r) / dof
    return float(coef[0]), float(coef[1]), float(math.sqrt(cov[0, 0])), float(math.sqrt(cov[1, 1]))


def _fading(gain: np.ndarray, noise_var: np.ndarray, t_s: np.ndarray, segment: np.ndarray, n_pre: int,
            max_lag: int) -> tuple[float, float, float]:
    """(Es/N0 linear, K linear, max Doppler Hz) of one set of bursts (module docstring)."""
    p = np.abs(gain) ** 2
    s_e = float(np.mean(noise_var)) / n_pre  # variance of each gain estimate
    omega = float(np.mean(p)) - s_e
    v = float(np.var(p)) - 2 * omega * s_e - s_e ** 2
    snr = omega / float(np.mean(noise_var))
    los = math.sqrt(max(omega ** 2 - v, 0.0))
    diffuse = max(omega - los, 1e-30)
    k = los / diffuse
    # intensity autocovariance by lag (in bursts, within segments), with its mean time lag
    dp = p - p.mean()
    taus, covs = [], []
    for lag in range(1, max_lag + 1):
        same = segment[lag:] == segment[:-lag]
        if same.sum() < 20:
            break
        covs.append(float(np.mean(dp[lag:][same] * dp[:-lag][same])))
        taus.append(float(np.mean(t_s[lag:][same] - t_s[:-lag][same])))
    fm = math.nan
    if covs and diffuse > 1e-3 * omega:
        taus, covs = np.array(taus), np.array(covs)
        r = (-los + np.sqrt(np.maximum(los ** 2 + covs, 0.0))) / diffuse  # normalised diffuse autocorrelation
        use = np.cumprod(r > 0.2).astype(bool)  # from lag 1 up to the first lag below 0.2
        if use.any():
            fm = _fit_jakes(taus[use], np.minimum(r[use], 1.0))
    return snr, k, fm


def _fit_jakes(tau: np.ndarray, r: np.ndarray) -> float:
    """f_m minimising sum (r - J0(2 pi f_m tau))^2 (grid, then golden section)."""
    from scipy.special import j0

    def cost(fm: float) -> float:
        return float(np.sum((r - j0(2 * np.pi * fm * tau)) ** 2))

    hi = 2.405 / (2 * np.pi * tau.min())  # J0's first zero at the shortest lag
    grid = np.geomspace(hi * 1e-3, hi, 200)
    i = int(np.argmin([cost(f) for f in grid]))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - g * (b - a), a + g * (b - a)
        if cost(c) < cost(d):
            b = d
        else:
            a = c
    return float(0.5 * (a + b))


def _ci(v: float, se: float) -> list[float]:
    return [v - 1.96 * se, v + 1.96 * se]


def fit_channel(rec: Recording, bursts: BurstTable, n_boot: int = 200, seed: int = 0) -> ChannelFit:
    """The channel's parameters with 95 % intervals from a recording's bursts (module docstring)."""
    fs, n_pre = rec.sample_rate_hz, rec.preamble.size
    seg_start = np.array([a for a, _ in rec.segments], float)
    t = rec.segment_time_s[bursts.segment] + (bursts.arrival - seg_start[bursts.segment]) / fs
    t = t - t.min()  # from the first burst
    duration = float(t.max() - t.min()) if t.size else 0.0
    notes: list[str] = []
    vals: dict[str, dict[str, Any]] = {}
    if bursts.arrival.size < 10:
        raise ValueError(f"{rec.path}: {bursts.arrival.size} bursts found; at least 10 are needed for a fit")
    # the ephemeris' delay and Doppler, where the captures carry them, come out before the line fits and go
    # back in after: a pass's curved delay and Doppler then fit like a straight stretch
    pred_f = rec.predicted_doppler_hz[bursts.segment]
    pred_d = rec.predicted_delay_s[bursts.segment] * fs
    first = int(np.argmin(t))
    # frequency: f(t) - prediction = f_mid + rate (t - t_mid)
    t_mid = float(np.mean(t))
    f_mid, rate, se_f, se_rate = _line(t - t_mid, bursts.freq_hz - pred_f)
    vals["doppler_rate_hz_s"] = {"value": rate, "ci95": _ci(rate, se_rate)}
    timed = np.isfinite(bursts.tx_sample)
    if timed.sum() >= 3 and rec.carrier_hz:
        delay = bursts.arrival[timed] - bursts.tx_sample[timed] - reference_offset_samples(rec.sps, rec.rolloff)
        d0, d1, se0, se1 = _line(t[timed], delay - pred_d[timed])
        vals["delay_samples"] = {"value": d0 + pred_d[first], "ci95": _ci(d0 + pred_d[first], se0)}
        # the delay rate is the mean Doppler over the recording: f_D(t_mid) = -f_c tau'
        fd_mid, se_fd = -rec.carrier_hz * d1 / fs, rec.carrier_hz * se1 / fs
        fd0 = fd_mid - rate * t_mid + pred_f[first]
        vals["doppler_hz"] = {"value": fd0, "ci95": _ci(fd0, math.hypot(se_fd, se_rate * t_mid))}
        cfo = f_mid - fd_mid
        vals["cfo_hz"] = {"value": cfo, "ci95": _ci(cfo, math.hypot(se_fd, se_f))}
    else:
        why = "no transmit samples (annotations sagin:tx_sample)" if timed.sum() < 3 else "no carrier (core:frequency)"
        notes.append(f"{why}: no delay, and the frequency offset is reported as Doppler (CFO unknown)")
        fd0 = f_mid - rate * t_mid + pred_f[first]
        vals["doppler_hz"] = {"value": fd0, "ci95": _ci(fd0, math.hypot(se_f, se_rate * t_mid))}
        vals["cfo_hz"] = {"value": None, "ci95": None}
        vals["delay_samples"] = {"value": None, "ci95": None}
    spacing = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    max_lag = int(min(max(bursts.arrival.size // 10, 2), 400))
    snr, k, fm = _fading(bursts.gain, bursts.noise_var, t, bursts.segment, n_pre, max_lag)
    # moving-block bootstrap over bursts: blocks of about two coherence times keep the fading's correlation
    rng = np.random.default_rng(seed)
    n = bursts.arrival.size
    block = int(np.clip(round(2.0 / (max(fm, 1e-3) * spacing)) if math.isfinite(fm) else 20, 5, max(n // 10, 5)))
    boot = []
    for _ in range(n_boot):
        starts = rng.integers(0, max(n - block, 1), size=-(-n // block))
        idx = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]
        seg = np.repeat(np.arange(starts.size), block)[:n]  # lags never cross a block
        boot.append(_fading(bursts.gain[idx], bursts.noise_var[idx], t[idx], seg, n_pre, min(max_lag, block - 1)))
    boot = np.array(boot)

    def pct(col: int, f) -> list[float] | None:
        x = f(boot[:, col])
        x = x[np.isfinite(x)]
        return [float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))] if x.size > n_boot // 2 else None

    db = lambda x: 10 * np.log10(np.maximum(x, 1e-30))  # noqa: E731
    vals["snr_db"] = {"value": float(db(snr)), "ci95": pct(0, db)}
    vals["k_factor_db"] = {"value": float(db(k)), "ci95": pct(1, db)}
    if k > 1e3:
        notes.append(f"K = {db(k):.0f} dB: almost no diffuse power, so the fading's maximum Doppler is not identifiable")
    vals["max_doppler_hz"] = {"value": fm if math.isfinite(fm) else None,
                              "ci95": pct(2, lambda x: x) if math.isfinite(fm) else None}
    if not math.isfinite(fm) and k <= 1e3:
        notes.append(f"the fading decorrelates within one burst spacing ({spacing * 1e3:.2f} ms): its maximum Doppler "
                     f"is above about {0.2 / spacing:.0f} Hz but not identifiable; record bursts closer together")
    if math.isfinite(fm) and fm * spacing > 0.25:
        notes.append(f"bursts every {spacing * 1e3:.2f} ms sample fading of {fm:.0f} Hz below its Nyquist rate; "
                     "the maximum Doppler is unreliable")
    return ChannelFit({k_: vals[k_] for k_ in FIT_KEYS}, notes, int(n), duration)
