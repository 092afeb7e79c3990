"""Theoretical performance: uncoded BER on AWGN and Rician fading, AWGN and constellation capacity.

All SNRs are Es/N0 in dB (symbol energy over the complex noise variance) unless a name says ebn0.

* PSK (BPSK, QPSK, 8PSK): exact. The sector probabilities come from the closed-form pdf of the received
  phase, integrated numerically over each decision sector; each sector offset is weighted by the mean Hamming
  distance between the labels it confuses.
* Square QAM (16QAM, 64QAM): exact. The I and Q axes are independent Gray PAMs; every level's probability of
  landing in every decision interval is a difference of Q functions.
* APSK (16APSK, 32APSK): no closed form exists. Where BER > 1e-3, the Gaussian pdf is integrated numerically
  over a grid (step sigma / 4 and d_min / 16) carrying the nearest-point decisions (agrees with simulation
  within ~2 %); below, the union bound over Voronoi neighbours weighted by Hamming distance, which is tight
  there (within ~3 %, < 0.1 dB).
* Rician fading (coherent detection, perfect channel knowledge): the AWGN BER averaged over the
  distribution of the instantaneous SNR g |h|^2, |h|^2 non-central chi-square with 2 degrees of freedom,
  E|h|^2 = 1 and K = LoS / scattered power (K = 0: Rayleigh).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numba
import numpy as np
from scipy import special

from sagin_hil.phy.modulation import Constellation

__all__ = [
    "awgn",
    "relay_snr_db",
    "ber_awgn",
    "ber_rician",
    "capacity_awgn",
    "capacity_constellation",
    "ebn0_to_esn0",
    "is_exact",
    "parse_code",
    "simulate_ber",
]


def ebn0_to_esn0(ebn0_db, bits_per_symbol: int, code_rate: float = 1.0):
    """Es/N0 (dB) for an Eb/N0 (dB): Es = Eb * bits_per_symbol * code_rate."""
    return np.asarray(ebn0_db, dtype=float) + 10 * np.log10(bits_per_symbol * code_rate)


def is_exact(modulation: str) -> bool:
    """True when ber_awgn is exact for this modulation (False: a union bound)."""
    return Constellation(modulation).name not in ("16apsk", "32apsk")


def _q(x):
    return 0.5 * special.erfc(np.asarray(x) / np.sqrt(2))


def _ber_pam(levels: np.ndarray, labels: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Exact nearest-level bit error rate of a PAM axis with real noise std sigma [s]."""
    order = np.argsort(levels)
    lv, lb = levels[order], labels[order]
    edges = np.concatenate([[-np.inf], (lv[1:] + lv[:-1]) / 2, [np.inf]])
    m = lb.shape[1]
    ber = np.zeros_like(sigma)
    for i, a in enumerate(lv):
        for j in range(lv.size):
            if i == j:
                continue
            p = _q((edges[j] - a) / sigma) - _q((edges[j + 1] - a) / sigma)
            ber += p * np.sum(lb[i] != lb[j])
    return ber / (lv.size * m)


def _phase_pdf(theta: np.ndarray, g: float) -> np.ndarray:
    """pdf of the received phase of a unit-amplitude symbol at Es/N0 = g (linear)."""
    c = np.cos(theta)
    return np.exp(-g) / (2 * np.pi) * (1 + np.sqrt(np.pi * g) * c * np.exp(g * c * c) * special.erfc(-np.sqrt(g) * c))


@lru_cache(maxsize=8)
def _psk_hamming_profile(name: str) -> np.ndarray:
    """Mean Hamming distance between a point's label and the label `d` sectors away, d = 0..M-1."""
    c = Constellation(name)
    order = np.argsort(np.mod(np.angle(c.points_f64), 2 * np.pi))
    lab = c.bit_table[order]
    size = lab.shape[0]
    return np.array([np.mean(np.sum(lab != np.roll(lab, -d, axis=0), axis=1)) for d in range(size)])


def _ber_psk(name: str, g: np.ndarray) -> np.ndarray:
    prof = _psk_hamming_profile(name)
    size = prof.size
    half = np.pi / size
    x, w = np.polynomial.legendre.leggauss(64)
    gf = np.minimum(g.ravel(), 300.0)  # beyond 300 (25 dB) the BER is < 1e-60 and exp() would overflow
    total = np.zeros(gf.size)
    for d in range(1, size):  # sector d spans 2 pi d / M +- pi / M: Gauss-Legendre per sector
        theta = np.mod(2 * np.pi * d / size + half * x + np.pi, 2 * np.pi) - np.pi
        total += prof[d] * half * (w @ _phase_pdf(theta[:, None], gf[None, :]))
    total[g.ravel() >= 300.0] = 0.0
    return (total / np.log2(size)).reshape(g.shape)


def _ber_nn_union(c: Constellation, g: np.ndarray) -> np.ndarray:
    """Union bound over Delaunay (Voronoi) neighbours, weighted by Hamming distance."""
    from scipy.spatial import Delaunay

    p = c.points_f64
    tri = Delaunay(np.c_[p.real, p.imag]).simplices
    pairs = np.unique(np.concatenate([tri[:, [i, j]] for i in range(3) for j in range(3) if i != j]), axis=0)
    d = np.abs(p[pairs[:, 0]] - p[pairs[:, 1]])
    ham = np.sum(c.bit_table[pairs[:, 0]] != c.bit_table[pairs[:, 1]], axis=1)
    pe = _q(d[None, :] * np.sqrt(g.ravel()[:, None] / 2))  # pairwise error Q(d / sqrt(2 N0)), N0 = 1 / g
    return (pe @ ham / (p.size * c.bits_per_symbol)).reshape(g.shape)


@numba.njit(cache=True)
def _grid_kernel(pr, pi, ham, grid, sig):
    total = 0.0
    inv = 1.0 / (2 * sig * sig)
    for a in range(grid.size):
        for b in range(grid.size):
            yr, yi = grid[a], grid[b]
            best, dec = 1e300, 0
            for j in range(pr.size):
                d = (yr - pr[j]) ** 2 + (yi - pi[j]) ** 2
                if d < best:
                    best, dec = d, j
            for i in range(pr.size):
                if i != dec:
                    total += np.exp(-((yr - pr[i]) ** 2 + (yi - pi[i]) ** 2) * inv) * ham[i, dec]
    return total


def _ber_grid(c: Constellation, gi: float) -> float:
    """BER by integrating the Gaussian noise pdf over a grid (step sigma / 4 and d_min / 16, at most
    400 x 400 points) on which the nearest-point decisions are evaluated."""
    p = c.points_f64
    d = np.abs(p[:, None] - p[None, :])
    np.fill_diagonal(d, np.inf)
    sig = np.sqrt(1 / (2 * gi))
    r = np.abs(p).max() + 6 * sig
    step = max(min(sig / 4, d.min() / 16), 2 * r / 400)
    grid = np.arange(-r, r + step / 2, step)
    ham = np.sum(c.bit_table[:, None, :] != c.bit_table[None, :, :], axis=2).astype(np.float64)
    total = _grid_kernel(p.real.copy(), p.imag.copy(), ham, grid, sig)
    return float(total * step**2 / (2 * np.pi * sig**2) / (p.size * c.bits_per_symbol))


def _ber_apsk(c: Constellation, g: np.ndarray) -> np.ndarray:
    out = _ber_nn_union(c, np.atleast_1d(g)).ravel()
    gf = np.atleast_1d(g).ravel()
    for i in np.flatnonzero(out > 1e-3):  # where the bound is loose: integrate numerically
        out[i] = _ber_grid(c, gf[i])
    return out.reshape(np.shape(g))


def ber_awgn(modulation: str, esn0_db) -> np.ndarray:
    """Uncoded bit error rate of Gray-mapped `modulation` with hard (nearest point) decisions on AWGN.

    Input: modulation name; esn0_db float or array. Output: float64 array of the same shape.
    """
    c = Constellation(modulation)
    g = 10 ** (np.asarray(esn0_db, dtype=float) / 10)
    if c.name == "bpsk":
        return _q(np.sqrt(2 * g))
    if c.name == "qpsk":
        return _q(np.sqrt(g))
    if c.name in ("16qam", "64qam"):
        pts = c.points_f64
        levels, idx = np.unique(np.round(pts.real, 12), return_index=True)
        labels = c.bit_table[idx][:, 0::2]  # I carries the even bits (TS 38.211)
        return _ber_pam(levels, labels, np.sqrt(1 / (2 * g)))
    if c.name == "8psk":
        return _ber_psk(c.name, np.atleast_1d(g)).reshape(g.shape)
    return _ber_apsk(c, g)


def ber_rician(modulation: str, esn0_db, k_factor_db: float | None, n_points: int = 96) -> np.ndarray:
    """Uncoded BER on flat Rician fading with coherent detection, averaged over the fading distribution.

    Input: modulation; esn0_db (mean Es/N0, float or array); k_factor_db (None or -inf for Rayleigh).
    Output: float64 array shaped like esn0_db.
    """
    from scipy import stats  # slow to import: only here

    k = 0.0 if k_factor_db is None or not np.isfinite(k_factor_db) else 10 ** (k_factor_db / 10)
    # |h|^2 ~ ncx2(df=2, nc=2K) * 1 / (2 (K + 1)), so that E|h|^2 = 1
    dist = stats.ncx2(df=2, nc=2 * k, scale=1 / (2 * (k + 1))) if k > 0 else stats.expon()
    # E[BER] = integral over the cdf level u of BER(F^-1(u)); u = exp(s) resolves the deep fades (u -> 0)
    # that dominate at high SNR. Gauss-Legendre over s in [log 1e-14, 0].
    nodes, weights = np.polynomial.legendre.leggauss(n_points)
    s_lo = np.log(1e-14)
    s_nodes = 0.5 * s_lo * (1 - nodes)
    u = np.exp(s_nodes)
    x = np.maximum(dist.ppf(np.minimum(u, 1 - 1e-16)), 1e-300)
    w = 0.5 * (-s_lo) * weights * u
    snr = np.asarray(esn0_db, dtype=float)
    awgn = _apsk_table(Constellation(modulation).name) if not is_exact(modulation) else None
    out = np.empty(snr.shape)
    for idx, s in np.ndenumerate(snr):
        inst = s + 10 * np.log10(x)
        out[idx] = np.sum(w * (ber_awgn(modulation, inst) if awgn is None else awgn(inst)))
    return out


@lru_cache(maxsize=4)
def _apsk_table(name: str):
    """APSK AWGN BER on a 1 dB grid, interpolated in log BER (the numerical integral is slow)."""
    grid = np.arange(-20.0, 40.01, 1.0)
    log_ber = np.log(np.maximum(ber_awgn(name, grid), 1e-300))
    return lambda snr_db: np.exp(np.interp(snr_db, grid, log_ber))


def capacity_awgn(esn0_db) -> np.ndarray:
    """Shannon capacity of the complex AWGN channel, bits per complex symbol: log2(1 + Es/N0)."""
    return np.log2(1 + 10 ** (np.asarray(esn0_db, dtype=float) / 10))


def capacity_constellation(modulation: str, esn0_db, n_nodes: int = 24) -> np.ndarray:
    """Constellation-constrained (coded modulation) capacity with equiprobable points on complex AWGN:
    C = m - mean_i E_n[log2 sum_j exp(-(|x_i - x_j + n|^2 - |n|^2) / N0)], Gauss-Hermite quadrature over n.

    Output: bits per symbol, float64 shaped like esn0_db.
    """
    c = Constellation(modulation)
    pts = c.points_f64
    t, w = np.polynomial.hermite.hermgauss(n_nodes)
    snr = np.asarray(esn0_db, dtype=float)
    out = np.empty(snr.shape)
    for idx, s in np.ndenumerate(snr):
        n0 = 10 ** (-s / 10)
        sig = np.sqrt(n0 / 2)
        nr, ni = np.meshgrid(np.sqrt(2) * sig * t, np.sqrt(2) * sig * t, indexing="ij")
        noise = (nr + 1j * ni).ravel()
        wn = np.outer(w, w).ravel() / np.pi
        diff = pts[:, None, None] - pts[None, :, None] + noise[None, None, :]  # [i, j, node]
        expo = -(np.abs(diff) ** 2 - np.abs(noise[None, None, :]) ** 2) / n0
        lse = special.logsumexp(expo, axis=1) / np.log(2)  # [i, node]
        out[idx] = c.bits_per_symbol - np.mean(np.sum(lse * wn[None, :], axis=1))
    return out


# --- Monte Carlo counterpart (used by `sagin-hil ber` and the tests) -------------------------------------


def parse_code(spec: str | None):
    """An LdpcCode from "none" | "nr:K:N" | "dvbs2:RATE:short|normal" (None for "none")."""
    if spec is None or spec == "none":
        return None
    parts = str(spec).split(":")
    from sagin_hil.phy.ldpc import dvbs2_code, nr_code

    try:
        if parts[0] == "nr" and len(parts) == 3:
            return nr_code(int(parts[1]), int(parts[2]))
        if parts[0] == "dvbs2" and len(parts) == 3:
            return dvbs2_code(parts[1], parts[2])
    except ValueError as exc:
        raise ValueError(f"bad code {spec!r}: {exc}") from None
    raise ValueError(f"unknown code {spec!r}; use none, nr:K:N (e.g. nr:1024:2048) or dvbs2:RATE:short (e.g. dvbs2:1/2:short)")


def awgn(symbols: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`symbols` (unit mean power) plus circular complex Gaussian noise of power N0 = 10^(-snr_db / 10):
    the one AWGN channel of the project's symbol-level measurements (codec quality, BLER tables, BER)."""
    n0 = 10 ** (-snr_db / 10)
    x = np.asarray(symbols)
    noise = np.sqrt(n0 / 2) * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    return (x + noise).astype(np.complex64 if x.dtype == np.complex64 else np.complex128)


def relay_snr_db(hop_snr_db: list[float]) -> float:
    """End-to-end SNR of analog symbols amplified and forwarded hop by hop, each relay renormalising the
    noisy symbols to unit power: SNR' = SNR SNR_h / (SNR + SNR_h + 1) per added hop."""
    acc = np.inf
    for s_db in hop_snr_db:
        s = 10 ** (s_db / 10)
        acc = s if np.isinf(acc) else acc * s / (acc + s + 1)
    return float(10 * np.log10(acc))


def _channel(x: np.ndarray, esn0_db: float, channel: str, k_factor_db: float | None, rng) -> tuple[np.ndarray, np.ndarray]:
    """Received symbols equalised by the known channel, and the per-symbol noise variance."""
    n0 = 10 ** (-esn0_db / 10)
    if channel == "awgn":
        return awgn(x, esn0_db, rng), np.full(x.shape, n0)
    noise = np.sqrt(n0 / 2) * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    if channel != "rician":
        raise ValueError(f"unknown channel {channel!r}; choose awgn or rician")
    k = 0.0 if k_factor_db is None or not np.isfinite(k_factor_db) else 10 ** (k_factor_db / 10)
    diffuse = (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape)) / np.sqrt(2)
    h = np.sqrt(k / (k + 1)) + np.sqrt(1 / (k + 1)) * diffuse
    h = np.where(np.abs(h) < 1e-12, 1e-12, h)
    return (h * x + noise) / h, n0 / np.abs(h) ** 2


def simulate_ber(
    modulation: str,
    esn0_db: float,
    code=None,
    channel: str = "awgn",
    k_factor_db: float | None = 10.0,
    target_errors: int = 300,
    max_bits: int = 2_000_000,
    demapper: str = "maxlog",
    iterations: int | None = None,
    rng: np.random.Generator | None = None,
    decoder: str = "auto",
) -> dict:
    """Monte Carlo BER (and BLER with a code) of one point: stop at `target_errors` bit errors (block errors
    when coded) or `max_bits` information bits. `decoder` and `iterations` go to
    sagin_hil.phy.ldpc.decoder_for: "auto" and None take the code family's defaults.

    Output: dict with bit_errors, bits, ber, and block_errors, blocks, bler (coded only).
    """
    rng = np.random.default_rng() if rng is None else rng
    rate = None
    if code is not None and modulation in ("16apsk", "32apsk"):
        rate = str(Fraction(code.k, code.n).limit_denominator(10))
    try:
        const = Constellation(modulation, rate)
    except ValueError:
        const = Constellation(modulation)  # a rate without a DVB-S2 ring ratio: the default rings
    m = const.bits_per_symbol
    out = {"bit_errors": 0, "bits": 0, "block_errors": 0, "blocks": 0}
    if code is None:
        n_sym = 1 << 16
        while out["bit_errors"] < target_errors and out["bits"] < max_bits:
            bits = rng.integers(0, 2, n_sym * m, dtype=np.uint8)
            y, _ = _channel(const.map(bits), esn0_db, channel, k_factor_db, rng)
            out["bit_errors"] += int(np.count_nonzero(const.hard_decide(y) != bits))
            out["bits"] += bits.size
        out["ber"] = out["bit_errors"] / out["bits"]
        return out
    from sagin_hil.phy.ldpc import decoder_for

    dec = decoder_for(code, decoder, iterations)
    batch = max(1, (1 << 16) // code.n)
    while out["block_errors"] < target_errors and out["bits"] < max_bits:
        info = rng.integers(0, 2, (batch, code.k), dtype=np.uint8)
        cw = code.encode(info).ravel()
        pad = (-cw.size) % m
        y, nv = _channel(const.map(np.concatenate([cw, np.zeros(pad, np.uint8)])), esn0_db, channel, k_factor_db, rng)
        llr = const.demap(y, nv, demapper)[: cw.size].reshape(batch, code.n)
        res = dec(llr)
        errs = np.count_nonzero(res.info_bits != info, axis=1)
        out["bit_errors"] += int(errs.sum())
        out["bits"] += info.size
        out["block_errors"] += int(np.count_nonzero(errs))
        out["blocks"] += batch
    out["ber"] = out["bit_errors"] / out["bits"]
    out["bler"] = out["block_errors"] / out["blocks"]
    return out
