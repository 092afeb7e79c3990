"""The emulator's numba kernel: one pass per sample through delay, fading, Doppler, phase noise, gain, noise.

Everything that could depend on where a stream is cut is a function of the absolute sample index n or of
state carried in the arrays passed in, so processing in chunks gives the same samples as one call.

Per output sample n (all taps l share the bulk delay tau(n) and the Doppler rotator):
    y[n] = gain * rot(n) * pn(n) * sum_l h_l(n) * x(n - tau(n) - d_l) + w[n]
x(.) is read from a ring buffer by 4-point Lagrange interpolation, h_l(n) is the tap's Rician fading
(sum of sinusoids evaluated every U samples and linearly interpolated), rot(n) = exp(j phi(n)) with
phi'' = 2 pi * Doppler rate, pn(n) a Wiener phase, w[n] complex Gaussian noise (ziggurat, gauss.py).
The loop runs in stretches between events (rotator re-anchoring, fading grid points, noise-level
updates) so the per-sample path has no integer division.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sagin_hil.phy.channel.gauss import fill_standard_normal

__all__ = ["channel_kernel", "sos_value", "RENORM"]

RENORM = 1024  # the Doppler rotator is recomputed exactly every RENORM samples of a segment
POWER_EVERY = 256  # the measured-power noise level is refreshed at multiples of this sample index
_SQRT_HALF = math.sqrt(0.5)


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


@njit(cache=True, fastmath=True, nogil=True)  # nogil: the service overlaps it with its socket thread
def channel_kernel(
    x, out, ring, n0,
    tau0, tau_rate, n_seg, tau_max, tap_delay,
    phi_seg, f_cyc, r_cyc, rot,
    fading_on, los_amp, nlos_amp, fad_u, fad_g0, fad_phase, fad_dphase, fad_h,
    gain, noise_mode, noise_scale, pow_acc, noise_state,
    pn_sigma, pn_rot, pn_state, kn, wn, fn,
):
    """Process x (complex64) into out (complex64); see the module docstring.

    ring: complex64 history, power-of-two length, sample m at ring[m & mask].
    tau(n) = tau0 + tau_rate * (n - n_seg) samples, clamped to [0, tau_max] (a drifting delay must not
      outgrow the ring); tap_delay[l] in samples.
    phi(n) = 2 pi (phi_seg + f_cyc k + r_cyc k^2 / 2), k = n - n_seg; rot = [rot(n), step(n), chirp].
    fading: h_l = los_amp[l] + nlos_amp[l] * sos(phases[l]); grid every fad_u samples from fad_g0;
      fad_h[l] = [value at the last grid point, at the next]; fad_phase holds the next grid point's phases.
    noise_mode: 0 none, 1 fixed std noise_scale, 2 std from the running mean input power of the samples
      before n, refreshed every POWER_EVERY samples (and at every sample until the first non-zero one)
      (pow_acc = [sum |x|^2, count of non-zero samples, current std]; noise_scale = gain^2 / snr_lin).
    pn_sigma: std of the per-sample Wiener phase step (0 = none); pn_rot = [current phasor].
    noise_state, pn_state: xorshift64* states; kn, wn, fn: ziggurat tables.
    """
    mask = ring.shape[0] - 1
    n_taps = tap_delay.shape[0]
    n_total = x.shape[0]
    h_a = np.zeros(n_taps, np.complex128)
    h_slope = np.zeros(n_taps, np.complex128)
    r0 = rot[0]
    step = rot[1]
    chirp = rot[2]
    pnr = pn_rot[0]
    std = pow_acc[2]
    p_sum = pow_acc[0]  # locals: a running sum kept in memory would serialise the loop
    p_cnt = pow_acc[1]
    # draw the randomness first, in tight loops (same order of draws however the stream is cut)
    wbuf = np.empty(2 * n_total if noise_mode != 0 else 0)
    fill_standard_normal(wbuf, noise_state, kn, wn, fn, _SQRT_HALF)
    pbuf = np.empty(n_total if pn_sigma > 0.0 else 0)
    fill_standard_normal(pbuf, pn_state, kn, wn, fn, pn_sigma)
    i = 0
    while i < n_total:
        n = n0 + i
        k = n - n_seg
        km = k % RENORM
        if km == 0:
            cyc = phi_seg + f_cyc * k + 0.5 * r_cyc * k * k
            cyc -= math.floor(cyc)
            r0 = complex(math.cos(2 * math.pi * cyc), math.sin(2 * math.pi * cyc))
            inc = 2 * math.pi * (f_cyc + r_cyc * (k + 0.5))
            step = complex(math.cos(inc), math.sin(inc))
            if pn_sigma > 0.0:
                pnr /= abs(pnr)
        run = min(n_total - i, RENORM - km)
        gm = 0
        if fading_on:
            g = n - fad_g0
            gm = g % fad_u
            if gm == 0:
                for l in range(n_taps):
                    fad_h[l, 0] = fad_h[l, 1]
                    for s in range(fad_phase.shape[1]):
                        ph = fad_phase[l, s] + fad_dphase[l, s]
                        fad_phase[l, s] = ph - 2 * math.pi * math.floor(ph / (2 * math.pi))
                    fad_h[l, 1] = los_amp[l] + nlos_amp[l] * sos_value(fad_phase, l)
            for l in range(n_taps):
                h_slope[l] = (fad_h[l, 1] - fad_h[l, 0]) / fad_u
                h_a[l] = fad_h[l, 0]
            run = min(run, fad_u - gm)
        if noise_mode == 2:
            nm = n % POWER_EVERY
            if (nm == 0 or std == 0.0) and p_cnt > 0:
                std = math.sqrt(p_sum / p_cnt * noise_scale)
            # until the first non-zero input has been seen, look again at every sample
            run = min(run, POWER_EVERY - nm) if std > 0.0 else 1
        for j in range(run):
            ii = i + j
            nn = n + j
            xv = x[ii]
            ring[nn & mask] = xv
            tau = tau0 + tau_rate * (k + j)
            if tau < 0.0:
                tau = 0.0
            elif tau > tau_max:
                tau = tau_max
            acc = 0j
            for l in range(n_taps):
                p = nn - tau - tap_delay[l]
                ip = int(math.floor(p))
                # centred 4-point Lagrange once x[ip + 2] has arrived, else the causal set ip-2 .. ip+1
                base = ip - 1 if ip + 2 <= nn else ip - 2
                t = p - base
                a1 = t - 1.0
                a2 = t - 2.0
                a3 = t - 3.0
                w0 = -a1 * a2 * a3 * (1.0 / 6.0)
                w1 = 0.5 * t * a2 * a3
                w2 = -0.5 * t * a1 * a3
                w3 = t * a1 * a2 * (1.0 / 6.0)
                if base >= 0 and nn - base <= mask:
                    v = (w0 * ring[base & mask] + w1 * ring[(base + 1) & mask]
                         + w2 * ring[(base + 2) & mask] + w3 * ring[(base + 3) & mask])
                else:  # before the stream began, or older than the kept history: zeros
                    v = 0j
                    ws = (w0, w1, w2, w3)
                    for q in range(4):
                        m = base + q
                        if m >= 0 and nn - m <= mask:
                            v += ws[q] * ring[m & mask]
                if fading_on:
                    v *= h_a[l] + h_slope[l] * (gm + j)
                acc += v
            y = acc * r0 * gain
            r0 *= step
            step *= chirp
            if pn_sigma > 0.0:
                y *= pnr
                d = pbuf[ii]
                pnr *= complex(1.0 - 0.5 * d * d, d)  # exp(jd) to second order; renormalised above
            if noise_mode == 1:
                y += noise_scale * complex(wbuf[2 * ii], wbuf[2 * ii + 1])
            elif noise_mode == 2:
                # float64: a float32 square overflows to inf from |x| ~ 1.8e19 and would set the noise
                # level of the rest of the stream (the caller zeroes NaN/inf and clips huge samples)
                xr = np.float64(xv.real)
                xi = np.float64(xv.imag)
                pw = xr * xr + xi * xi
                if pw > 0.0:
                    p_sum += pw
                    p_cnt += 1.0
                y += std * complex(wbuf[2 * ii], wbuf[2 * ii + 1])
            out[ii] = y
        i += run
    rot[0] = r0
    rot[1] = step
    pn_rot[0] = pnr
    pow_acc[0] = p_sum
    pow_acc[1] = p_cnt
    pow_acc[2] = std
