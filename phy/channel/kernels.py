"""The emulator's numba kernel: delay, fading, Doppler, phase noise, gain and noise, in vectorised passes.

Everything that could depend on where a stream is cut is a function of the absolute sample index n or of
state carried in the arrays passed in, so processing in chunks gives the same samples as one call (bit for
bit: the floating-point flags below allow no reassociation, so a sample computed in a vector lane or in a
scalar remainder gets the same operations in the same order).

Per output sample n (all taps l share the bulk delay tau(n) and the Doppler rotator):
    y[n] = gain * rot(n) * pn(n) * sum_l h_l(n) * x(n - tau(n) - d_l) + w[n]
x(.) is read from a ring buffer by 4-point Lagrange interpolation, h_l(n) is the tap's Rician fading
(sum of sinusoids evaluated every U samples and linearly interpolated), rot(n) = exp(j phi(n)) with
phi'' = 2 pi * Doppler rate, pn(n) a Wiener phase, w[n] complex Gaussian noise (gauss.py).

The stream is processed in runs between events (rotator re-anchoring, fading grid points, noise-level
updates), and each run in passes with no dependence from one sample to the next, so that the compiler
vectorises them (views indexed from 0 by the loop counter, so it also knows no index is negative):
- the input is copied into the ring, whose first RING_PAD entries are mirrored past its end, so that a
  run's reads never wrap; the ring holds at least 4096 samples more than any read reaches, so a run's
  copy never overwrites history the same run reads, and what precedes the stream reads as zeros;
- the delay, per tap: the integer part of n - tau(n) - d_l moves with n except where the fractional part
  wraps, which splits a run into pieces whose ring reads are contiguous; the weights and the fading in
  float32, the samples' precision (the position itself in float64);
- the phase noise (serial, only when on) and the noise draws (gauss.py);
- the output, acc * rot * gain + noise, with the rotator of sample SUB a + b of the segment as B_a T_a[b]:
  B_a is the rotator at the start of sub-block a and T_a[b] the rotation within it; B_{a+1} = B_a T_a[SUB]
  and T_{a+1}[b] = T_a[b] C[b] with C[b] = exp(j 2 pi SUB r b) (the chirp over one sub-block); B is
  recomputed exactly every RENORM samples, T and C every TABLE_RENORM.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sagin_hil.phy.channel.gauss import fill_pairs, fill_standard_normal_into

__all__ = ["channel_kernel", "sos_value", "outside", "RENORM", "RING_PAD", "ROT_STATE"]

SUB = 64  # rotator sub-block (samples of a segment)
RENORM = 1024  # the rotator B is recomputed exactly every RENORM samples of a segment (also the longest run)
TABLE_RENORM = 32768  # ... and its in-block tables T, C every TABLE_RENORM samples
ROT_STATE = 1 + 2 * (SUB + 1)  # [B, T[0..SUB], C[0..SUB]]
RING_PAD = RENORM + 8  # the ring's first RING_PAD samples are repeated past its power-of-two size
POWER_EVERY = 256  # the measured-power noise level is refreshed at multiples of this sample index
_SQRT_HALF = math.sqrt(0.5)
F32 = np.float32
# IEEE-exact apart from signed zeros: no reassociation and no fused multiply-adds (the compiler fuses
# differently in vector and in scalar code), so chunking cannot change a result.
_FLAGS = {"nsz"}


@njit(cache=True)
def sos_value(phases: np.ndarray, l: int) -> complex:
    """One tap's diffuse part: (1/sqrt(M)) (sum_{k<M} cos phase_k + j sum_{k>=M} cos phase_k), M = N/2.

    The in-phase and quadrature rails are independent sums of M cosines (Zheng & Xiao's model), so the
    process is circular with autocorrelation J0(2 pi f_D tau) and unit mean power.
    """
    m = phases.shape[1] // 2
    re = 0.0
    im = 0.0
    for k in range(m):
        re += math.cos(phases[l, k])
        im += math.cos(phases[l, m + k])
    return complex(re, im) / math.sqrt(m)


@njit(cache=True, nogil=True)
def outside(v, limit):
    """Whether any of v is NaN, infinite or beyond +-limit (one vectorised pass; the usual answer is no)."""
    lim = v.dtype.type(limit)
    bad = 0
    for i in range(v.shape[0]):
        bad |= not abs(v[i]) <= lim
    return bad != 0


@njit(cache=True, inline="always")
def _cis(cycles):
    """exp(j 2 pi cycles), reduced to one turn first."""
    c = cycles - math.floor(cycles)
    return complex(math.cos(2 * math.pi * c), math.sin(2 * math.pi * c))


@njit(cache=True)
def _advance(rot, kk, phi_seg, f_cyc, r_cyc):
    """At sample kk = SUB a of a segment: the rotator tables of sub-block a from those of a - 1, or exactly."""
    if kk % TABLE_RENORM == 0:
        f_k = f_cyc + r_cyc * kk  # the frequency at kk, cycles per sample
        for q in range(SUB + 1):
            rot[1 + q] = _cis(f_k * q + 0.5 * r_cyc * q * q)
            rot[2 + SUB + q] = _cis(r_cyc * SUB * q)
    else:
        last = rot[1 + SUB]
        for q in range(SUB + 1):
            rot[1 + q] *= rot[2 + SUB + q]
        rot[0] *= last
    if kk % RENORM == 0:
        rot[0] = _cis(phi_seg + f_cyc * kk + 0.5 * r_cyc * kk * kk)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _output(y, accr, acci, k, rot, phi_seg, f_cyc, r_cyc, gain, w, std, noisy):
    """y[j] = gain rot(k + j) acc[j] + std (w[2 j] + j w[2 j + 1]), the rotator from its sub-block tables
    (module docstring), which it advances."""
    run = y.shape[0]
    j = 0
    while j < run:
        b = (k + j) % SUB
        if b == 0:
            _advance(rot, k + j, phi_seg, f_cyc, r_cyc)
        end = min(run, j + SUB - b)
        br = rot[0].real * gain
        bi = rot[0].imag * gain
        # views indexed from 0 by the loop counter (module docstring)
        tb = rot[1 + b:1 + b + end - j]
        ys = y[j:end]
        ar = accr[j:end]
        ai = acci[j:end]
        ws = w[2 * j:2 * end]
        for q in range(end - j):
            rr = br * tb[q].real - bi * tb[q].imag
            ri = br * tb[q].imag + bi * tb[q].real
            yr = ar[q] * rr - ai[q] * ri
            yi = ar[q] * ri + ai[q] * rr
            if noisy:
                yr += std * ws[2 * q]
                yi += std * ws[2 * q + 1]
            ys[q] = complex(yr, yi)
        j = end


@njit(cache=True, inline="always")
def _offset(tau0, tau_rate, kk, tau_max, d):
    """(-tau(kk) - d, its floor): where the delayed sample falls relative to the current one."""
    tau = min(max(tau0 + tau_rate * kk, 0.0), tau_max)
    return -tau - d, math.floor(-tau - d)


@njit(cache=True, fastmath=_FLAGS)
def _delay_tap(accr, acci, ring, mask, n, k, run, tau0, tau_rate, tau_max, d, fading, ha, hs, gm):
    """acc[j] += h(j) * x(n + j - tau - d), j < run, by 4-point Lagrange interpolation from the ring."""
    j = 0
    while j < run:
        off = _offset(tau0, tau_rate, k + j, tau_max, d)[1]
        end = run
        if _offset(tau0, tau_rate, k + run - 1, tau_max, d)[1] != off:  # rare: the integer part steps
            end = j + 1
            while _offset(tau0, tau_rate, k + end, tau_max, d)[1] == off:
                end += 1
        # centred on the sample pair around the delayed instant once the later one has arrived, else causal
        c = 1.0 if off <= -2.0 else 2.0
        s = (n + j + np.int64(off) - np.int64(c)) & mask
        # views indexed from 0 by the loop counter (module docstring)
        xs = ring[s:s + end - j + 3]
        ar = accr[j:end]
        ai = acci[j:end]
        for q in range(end - j):
            # the position in float64 (tau is large), the rest in float32 like the samples themselves
            t = np.float32(_offset(tau0, tau_rate, k + j + q, tau_max, d)[0] - off + c)
            a1 = t - F32(1.0)
            a2 = t - F32(2.0)
            a3 = t - F32(3.0)
            w0 = -a1 * a2 * a3 * F32(1.0 / 6.0)
            w1 = F32(0.5) * t * a2 * a3
            w2 = F32(-0.5) * t * a1 * a3
            w3 = t * a1 * a2 * F32(1.0 / 6.0)
            x0 = xs[q]
            x1 = xs[q + 1]
            x2 = xs[q + 2]
            x3 = xs[q + 3]
            vr = w0 * x0.real + w1 * x1.real + w2 * x2.real + w3 * x3.real
            vi = w0 * x0.imag + w1 * x1.imag + w2 * x2.imag + w3 * x3.imag
            if fading:
                g = np.float32(gm + j + q)
                hr = ha.real + hs.real * g
                hi = ha.imag + hs.imag * g
                ar[q] += vr * hr - vi * hi
                ai[q] += vr * hi + vi * hr
            else:
                ar[q] += vr
                ai[q] += vi
        j = end


@njit(cache=True, nogil=True)  # nogil: the service overlaps it with its socket thread
def channel_kernel(
    x, out, ring, n0,
    tau0, tau_rate, n_seg, tau_max, tap_delay,
    phi_seg, f_cyc, r_cyc, rot,
    fading_on, los_amp, nlos_amp, fad_u, fad_g0, fad_phase, fad_dphase, fad_h,
    gain, noise_mode, noise_scale, pow_acc, noise_state,
    pn_sigma, pn_rot, pn_state,
):
    """Process x (complex64) into out (complex64); see the module docstring.

    ring: complex64 history of power-of-two size N plus RING_PAD, sample m at ring[m & (N - 1)] and its
      first RING_PAD entries repeated at ring[N:].
    tau(n) = tau0 + tau_rate * (n - n_seg) samples, clamped to [0, tau_max] (a drifting delay must not
      outgrow the ring); tap_delay[l] in samples.
    phi(n) = 2 pi (phi_seg + f_cyc k + r_cyc k^2 / 2), k = n - n_seg; rot: ROT_STATE rotator tables.
    fading: h_l = los_amp[l] + nlos_amp[l] * sos(phases[l]); grid every fad_u samples from fad_g0;
      fad_h[l] = [value at the last grid point, at the next]; fad_phase holds the next grid point's phases.
    noise_mode: 0 none, 1 fixed std noise_scale, 2 std from the running mean input power of the samples
      before n, refreshed every POWER_EVERY samples (and at every sample until the first non-zero one)
      (pow_acc = [sum |x|^2, count of non-zero samples, current std]; noise_scale = gain^2 / snr_lin).
    pn_sigma: std of the per-sample Wiener phase step (0 = none); pn_rot = [current phasor].
    noise_state, pn_state: [key, index of the next draw] of counter-based Gaussian streams (gauss.py).
    """
    size = ring.shape[0] - RING_PAD
    mask = size - 1
    n_taps = tap_delay.shape[0]
    n_total = x.shape[0]
    pnr = pn_rot[0]
    std = pow_acc[2]
    p_sum = pow_acc[0]
    p_cnt = pow_acc[1]
    # the draws of sample n0 + i are numbers noise_state[1] + 2 i, 2 i + 1 and pn_state[1] + i of their
    # streams, made run by run (a whole block's would be megabytes of fresh memory per call)
    w_key, w_next = noise_state[0], np.int64(noise_state[1])  # indices as int64: uint64 + int64 is a float
    p_key, p_next = pn_state[0], np.int64(pn_state[1])
    wbuf = np.empty(2 * RENORM, np.float32)
    work = np.empty(3 * RENORM)
    pbuf = np.empty(RENORM)
    accr = np.empty(RENORM, np.float32)
    acci = np.empty(RENORM, np.float32)
    i = 0
    while i < n_total:
        n = n0 + i
        k = n - n_seg
        km = k % RENORM
        run = min(n_total - i, RENORM - km)
        gm = 0
        if fading_on:
            gm = (n - fad_g0) % fad_u
            if gm == 0:
                for l in range(n_taps):
                    fad_h[l, 0] = fad_h[l, 1]
                    for s in range(fad_phase.shape[1]):
                        ph = fad_phase[l, s] + fad_dphase[l, s]
                        fad_phase[l, s] = ph - 2 * math.pi * math.floor(ph / (2 * math.pi))
                    fad_h[l, 1] = los_amp[l] + nlos_amp[l] * sos_value(fad_phase, l)
            run = min(run, fad_u - gm)
        if noise_mode == 2:
            nm = n % POWER_EVERY
            if (nm == 0 or std == 0.0) and p_cnt > 0:
                std = math.sqrt(p_sum / p_cnt * noise_scale)
            # until the first non-zero input has been seen, look again at every sample
            run = min(run, POWER_EVERY - nm) if std > 0.0 else 1
        # the input into the ring (and its mirrored head)
        start = n & mask
        first = min(run, size - start)
        ring[start:start + first] = x[i:i + first]
        ring[:run - first] = x[i + first:i + run]
        if start < RING_PAD:
            ring[size + start:size + min(start + first, RING_PAD)] = ring[start:min(start + first, RING_PAD)]
        if run > first:
            ring[size:size + min(run - first, RING_PAD)] = ring[:min(run - first, RING_PAD)]
        accr[:run] = 0.0
        acci[:run] = 0.0
        for l in range(n_taps):
            ha = np.complex64(fad_h[l, 0])
            hs = np.complex64((fad_h[l, 1] - fad_h[l, 0]) / fad_u)
            _delay_tap(accr, acci, ring, mask, n, k, run, tau0, tau_rate, tau_max, tap_delay[l], fading_on,
                       ha, hs, gm)
        if pn_sigma > 0.0:
            # wbuf and work as its scratch: this run's noise is drawn into them only below
            fill_standard_normal_into(pbuf[:run], p_key, p_next + i, pn_sigma, wbuf, work)
            if km == 0:
                pnr /= abs(pnr)
            for j in range(run):
                v = complex(accr[j], acci[j]) * pnr
                accr[j] = v.real
                acci[j] = v.imag
                d = pbuf[j]
                pnr *= complex(1.0 - 0.5 * d * d, d)  # exp(jd) to second order; renormalised above
        if noise_mode != 0:
            fill_pairs(wbuf[:2 * run], w_key, w_next // 2 + i, _SQRT_HALF, work)
        _output(out[i:i + run], accr, acci, k, rot, phi_seg, f_cyc, r_cyc, gain, wbuf,
                noise_scale if noise_mode == 1 else std, noise_mode != 0)
        if noise_mode == 2:
            for j in range(run):
                # float64: a float32 square overflows to inf from |x| ~ 1.8e19 and would set the noise
                # level of the rest of the stream (the caller zeroes NaN/inf and clips huge samples)
                xr = np.float64(x[i + j].real)
                xi = np.float64(x[i + j].imag)
                pw = xr * xr + xi * xi
                if pw > 0.0:
                    p_sum += pw
                    p_cnt += 1.0
        i += run
    if noise_mode != 0:
        noise_state[1] = np.uint64(w_next + 2 * n_total)
    if pn_sigma > 0.0:
        pn_state[1] = np.uint64(p_next + n_total)
    pn_rot[0] = pnr
    pow_acc[0] = p_sum
    pow_acc[1] = p_cnt
    pow_acc[2] = std
