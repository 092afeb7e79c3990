"""Newton kernels of the AO blocks (numba): log-barrier terms of each aggregated block and the barrier
method that solves them (ao_solvers.py sets the blocks up; docs/controllers.md gives the model).

A block has nv variables per cluster (5 for the bandwidth block P3 and the power block P5, 8 for the
joint resource block) coupled across clusters only by the satellite budgets, so the Newton system is
block-diagonal plus rank one or two and is solved by a Cholesky per cluster and Woodbury's identity.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["solve_aggregated", "waterfill"]

LN2 = math.log(2.0)


@numba.njit(cache=True)
def _rate(b, p, s):
    """r = b log2(1 + s p / b) and its first and second derivatives in (b, p)."""
    z = s * p / b
    l1 = math.log1p(z)
    q = (1.0 + z) * (1.0 + z)
    r = b * l1 / LN2
    rb = (l1 - z / (1.0 + z)) / LN2
    rp = s / (1.0 + z) / LN2
    rbb = -z * z / (b * q) / LN2
    rpp = -s * s / (b * q) / LN2
    rbp = s * z / (b * q) / LN2
    return r, rb, rp, rbb, rpp, rbp


@numba.njit(cache=True)
def _sat(B, P, G, prm):
    """Satellite-hop equivalent rate R = c (A1 B + A B G P / (G P + g0 B)) and its derivatives in (B, P)."""
    c, a1, aa, g0 = prm[0], prm[1], prm[2], prm[3]
    u = G * P
    v = g0 * B
    w = u + v
    w2 = w * w
    w3 = w2 * w
    h = B * u / w
    R = c * (a1 * B + aa * h)
    RB = c * (a1 + aa * u * u / w2)
    RP = c * aa * G * v * v / (g0 * w2)
    RBB = c * aa * (-2.0 * g0 * u * u / w3)
    RPP = c * aa * (-2.0 * G * G * v * v / (g0 * w3))
    RBP = c * aa * (2.0 * G * u * v / w3)
    return R, RB, RP, RBB, RPP, RBP


# ---- aggregated blocks ---------------------------------------------------------------------------------
# Within a cluster all SemUsers share (a, phi) and so do all ConUsers, so each block reduces exactly to
# one "type user" per kind (docs/controllers.md): z[n] = [B or P, w_s or P_s, w_c or P_c, t_s, t_c].


@numba.njit(cache=True)
def waterfill(P, b, th, cnt):
    """Split power P over users with bandwidths b and thresholds th = 1/s (sorted ascending) to maximise
    sum b log2(1 + s p / b): p = b (eta - th)^+. Returns (Psi, dPsi/dP, d2Psi/dP2, eta)."""
    sb = 0.0
    sbt = 0.0
    eta = 0.0
    j = 0
    for j in range(cnt):
        sb += b[j]
        sbt += b[j] * th[j]
        eta = (P + sbt) / sb
        if j == cnt - 1 or eta <= th[j + 1]:
            break
    psi = 0.0
    for i in range(j + 1):
        psi += b[i] * math.log2(eta / th[i])
    return psi, 1.0 / (eta * LN2), -1.0 / (eta * eta * LN2 * sb), eta


@numba.njit(cache=True)
def _cluster_terms(block, z, tau, d, prm, has, wf_b, wf_th, wf_n, g, H, deriv):
    """Barrier value -tau (a_s t_s + t_c) - sum log(-g_i) of one cluster; +inf outside the interior.
    With deriv, also its gradient g (5) and Hessian H (5x5)."""
    c, a1, aa, g0, delta = prm[0], prm[1], prm[2], prm[3], prm[4]
    if deriv:
        g[:] = 0.0
        H[:, :] = 0.0
    # optional cost delta per unit of resource (ao_solvers.RESOURCE_COST, 0 by default): a small value
    # picks, among several optima, the one that uses least bandwidth / power
    val = tau * delta * z[0]
    if deriv:
        g[0] += tau * delta
    a_s = d[4] if block == 0 else d[2]
    phs = d[5] if block == 0 else d[3]
    phc = d[6] if block == 0 else d[4]
    coef = (a_s, 1.0)
    for k in range(2):
        if not has[k]:
            continue
        x, t = z[1 + k], z[3 + k]
        if x <= 0.0 or t <= 0.0:
            return np.inf
        val -= tau * coef[k] * t
        val += tau * delta * x
        if block == 0:  # type bandwidth w -> rho = w log2(1 + K / w)
            zz = d[k] / x
            l1 = math.log1p(zz)
            f = x * l1 / LN2
            f1 = (l1 - zz / (1.0 + zz)) / LN2
            f2 = -zz * zz / (x * (1.0 + zz) ** 2) / LN2
        else:  # type power -> water-filling value
            f, f1, f2, _ = waterfill(x, wf_b[k], wf_th[k], wf_n[k])
        gv = t - f
        if gv >= 0.0:
            return np.inf
        val -= math.log(-gv) + math.log(x) + math.log(t)
        if deriv:
            inv = 1.0 / (-gv)
            it, ix = 3 + k, 1 + k
            g[it] += inv - 1.0 / t - tau * coef[k]
            g[ix] += -f1 * inv - 1.0 / x + tau * delta
            H[it, it] += inv * inv + 1.0 / (t * t)
            H[it, ix] -= f1 * inv * inv
            H[ix, it] -= f1 * inv * inv
            H[ix, ix] += f1 * f1 * inv * inv - f2 * inv + 1.0 / (x * x)
    y = z[0]
    if y <= 0.0:
        return np.inf
    if block == 0:  # y = B, u = G P fixed
        B, u = y, d[2]
        w = u + g0 * B
        R = c * (a1 * B + aa * B * u / w)
        R1 = c * (a1 + aa * u * u / (w * w))
        R2 = c * aa * (-2.0 * g0 * u * u / (w * w * w))
    else:  # y = P, B fixed
        B, G = d[0], d[1]
        u = G * y
        v = g0 * B
        w = u + v
        R = c * (a1 * B + aa * B * u / w)
        R1 = c * aa * G * v * v / (g0 * w * w)
        R2 = c * aa * (-2.0 * G * G * v * v / (g0 * w * w * w))
    ts = z[3] if has[0] else 0.0
    tc = z[4] if has[1] else 0.0
    gv = a_s * ts + tc - R
    if gv >= 0.0:
        return np.inf
    val -= math.log(-gv) + math.log(y)
    if deriv:
        inv = 1.0 / (-gv)
        dg0, dg3, dg4 = -R1, a_s, 1.0
        g[0] += dg0 * inv - 1.0 / y
        g[3] += dg3 * inv
        g[4] += dg4 * inv
        vec = (dg0, 0.0, 0.0, dg3, dg4)
        for i in range(5):
            for j in range(5):
                H[i, j] += vec[i] * vec[j] * inv * inv
        H[0, 0] += -R2 * inv + 1.0 / (y * y)
    S = phs * ts + phc * tc
    if block == 0:  # compute cap fixed: S <= F; bandwidth: B + w_s + w_c <= 1
        gv = S - d[3]
        if gv >= 0.0:
            return np.inf
        val -= math.log(-gv)
        ws = z[1] if has[0] else 0.0
        wc = z[2] if has[1] else 0.0
        gb = y + ws + wc - 1.0
        if gb >= 0.0:
            return np.inf
        val -= math.log(-gb)
        if deriv:
            inv = 1.0 / (-gv)
            vec = (0.0, 0.0, 0.0, phs, phc)
            for i in range(3, 5):
                g[i] += vec[i] * inv
                for j in range(3, 5):
                    H[i, j] += vec[i] * vec[j] * inv * inv
            inv = 1.0 / (-gb)
            for i in range(3):
                g[i] += inv
                for j in range(3):
                    H[i, j] += inv * inv
    else:  # UAV power: P_s + P_c + k3 S^3 <= 1
        k3 = d[5]
        ps = z[1] if has[0] else 0.0
        pc = z[2] if has[1] else 0.0
        gv = ps + pc + k3 * S * S * S - 1.0
        if gv >= 0.0:
            return np.inf
        val -= math.log(-gv)
        if deriv:
            inv = 1.0 / (-gv)
            vec = (0.0, 1.0, 1.0, 3.0 * k3 * S * S * phs, 3.0 * k3 * S * S * phc)
            for i in range(1, 5):
                g[i] += vec[i] * inv
                for j in range(1, 5):
                    H[i, j] += vec[i] * vec[j] * inv * inv
            H[3, 3] += 6.0 * k3 * S * phs * phs * inv
            H[3, 4] += 6.0 * k3 * S * phs * phc * inv
            H[4, 3] += 6.0 * k3 * S * phs * phc * inv
            H[4, 4] += 6.0 * k3 * S * phc * phc * inv
    return val


@numba.njit(cache=True)
def _joint_terms(z, tau, d, prm, has, g, H, deriv):
    """Barrier terms of one cluster in the joint resource block:
    z = [B, P, w_s, w_c, P_s, P_c, t_s, t_c]; a type's (w, P) goes to its user with the best channel."""
    c, a1, aa, g0, delta = prm[0], prm[1], prm[2], prm[3], prm[4]
    if deriv:
        g[:] = 0.0
        H[:, :] = 0.0
    a_s, phs, phc, k3 = d[3], d[4], d[5], d[6]
    val = tau * delta * (z[0] + z[1])
    if deriv:
        g[0] += tau * delta
        g[1] += tau * delta
    for k in range(2):
        if not has[k]:
            continue
        iw, ip, it = 2 + k, 4 + k, 6 + k
        w, pk, t = z[iw], z[ip], z[it]
        if w <= 0.0 or pk <= 0.0 or t <= 0.0:
            return np.inf
        coef = a_s if k == 0 else 1.0
        val += -tau * coef * t + tau * delta * (w + pk)
        r, rb, rp, rbb, rpp, rbp = _rate(w, pk, d[k])
        gv = t - r
        if gv >= 0.0:
            return np.inf
        val -= math.log(-gv) + math.log(w) + math.log(pk) + math.log(t)
        if deriv:
            inv = 1.0 / (-gv)
            i2 = inv * inv
            g[it] += inv - 1.0 / t - tau * coef
            g[iw] += -rb * inv - 1.0 / w + tau * delta
            g[ip] += -rp * inv - 1.0 / pk + tau * delta
            H[it, it] += i2 + 1.0 / (t * t)
            H[it, iw] -= rb * i2
            H[iw, it] -= rb * i2
            H[it, ip] -= rp * i2
            H[ip, it] -= rp * i2
            H[iw, iw] += rb * rb * i2 - rbb * inv + 1.0 / (w * w)
            H[ip, ip] += rp * rp * i2 - rpp * inv + 1.0 / (pk * pk)
            H[iw, ip] += rb * rp * i2 - rbp * inv
            H[ip, iw] += rb * rp * i2 - rbp * inv
    B, P = z[0], z[1]
    if B <= 0.0 or P <= 0.0:
        return np.inf
    R, RB, RP, RBB, RPP, RBP = _sat(B, P, d[2], prm)
    ts = z[6] if has[0] else 0.0
    tc = z[7] if has[1] else 0.0
    gv = a_s * ts + tc - R
    if gv >= 0.0:
        return np.inf
    val -= math.log(-gv) + math.log(B) + math.log(P)
    ws = z[2] if has[0] else 0.0
    wc = z[3] if has[1] else 0.0
    gb = B + ws + wc - 1.0
    if gb >= 0.0:
        return np.inf
    val -= math.log(-gb)
    ps = z[4] if has[0] else 0.0
    pc = z[5] if has[1] else 0.0
    S = phs * ts + phc * tc
    gp = ps + pc + k3 * S * S * S - 1.0
    if gp >= 0.0:
        return np.inf
    val -= math.log(-gp)
    if deriv:
        inv = 1.0 / (-gv)
        vec = (-RB, -RP, 0.0, 0.0, 0.0, 0.0, a_s, 1.0)
        for i in range(8):
            g[i] += vec[i] * inv
            for j in range(8):
                H[i, j] += vec[i] * vec[j] * inv * inv
        H[0, 0] += -RBB * inv + 1.0 / (B * B)
        H[1, 1] += -RPP * inv + 1.0 / (P * P)
        H[0, 1] -= RBP * inv
        H[1, 0] -= RBP * inv
        g[0] -= 1.0 / B
        g[1] -= 1.0 / P
        inv = 1.0 / (-gb)
        vec = (1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
        for i in range(8):
            g[i] += vec[i] * inv
            for j in range(8):
                H[i, j] += vec[i] * vec[j] * inv * inv
        inv = 1.0 / (-gp)
        vec = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 3.0 * k3 * S * S * phs, 3.0 * k3 * S * S * phc)
        for i in range(8):
            g[i] += vec[i] * inv
            for j in range(8):
                H[i, j] += vec[i] * vec[j] * inv * inv
        H[6, 6] += 6.0 * k3 * S * phs * phs * inv
        H[6, 7] += 6.0 * k3 * S * phs * phc * inv
        H[7, 6] += 6.0 * k3 * S * phs * phc * inv
        H[7, 7] += 6.0 * k3 * S * phc * phc * inv
    return val


@numba.njit(cache=True)
def _a_s(block, d):
    return d[4] if block == 0 else (d[2] if block == 1 else d[3])


@numba.njit(cache=True)
def _total(block, z, tau, d, prm, has, wf_b, wf_th, wf_n, caps, grad, Hb, cpl, deriv):
    """Barrier value of the whole block (all clusters + satellite budgets). With deriv, the gradient and
    the Hessian as per-cluster blocks Hb (N, nv, nv) plus the satellite budgets' rank-one couplings:
    H = blockdiag(Hb) + sum_g cpl[g] v_g v_g^T, v_g = 1 on variable g of every cluster."""
    N, nv = z.shape
    val = 0.0
    for n in range(N):
        if block == 2:
            v = _joint_terms(z[n], tau, d[n], prm, has[n], grad[nv * n:nv * n + nv], Hb[n], deriv)
        else:
            v = _cluster_terms(block, z[n], tau, d[n], prm, has[n], wf_b[n], wf_th[n], wf_n[n],
                               grad[nv * n:nv * n + nv], Hb[n], deriv)
        if v == np.inf:
            return np.inf
        val += v
    n_glob = 2 if block == 2 else 1
    for gi in range(n_glob):  # satellite bandwidth (var 0) / power (var 1 in the joint block, var 0 in P5)
        tot = 0.0
        for n in range(N):
            tot += z[n, gi]
        gv = tot - caps[gi]
        if gv >= 0.0:
            return np.inf
        val -= math.log(-gv)
        if deriv:
            inv = 1.0 / (-gv)
            cpl[gi] = inv * inv
            for n in range(N):
                grad[nv * n + gi] += inv
    if deriv:
        for n in range(N):  # variables of absent user types stay put
            for k in range(2):
                if not has[n, k]:
                    for i in range(2 + k if block == 2 else 1 + k, nv, 2):
                        grad[nv * n + i] = 0.0
                        Hb[n, i, :] = 0.0
                        Hb[n, :, i] = 0.0
                        Hb[n, i, i] = 1.0
    return val


@numba.njit(cache=True)
def _chol(A):
    """In-place lower Cholesky factor of a small SPD matrix; False if not numerically positive definite."""
    n = A.shape[0]
    for j in range(n):
        acc = A[j, j]
        for k in range(j):
            acc -= A[j, k] * A[j, k]
        if not acc > 0.0:
            return False
        ljj = math.sqrt(acc)
        A[j, j] = ljj
        for i in range(j + 1, n):
            acc = A[i, j]
            for k in range(j):
                acc -= A[i, k] * A[j, k]
            A[i, j] = acc / ljj
    return True


@numba.njit(cache=True)
def _chol_apply(L, b, out):
    """out = (L L^T)^-1 b for the factor L from _chol."""
    n = L.shape[0]
    for i in range(n):
        acc = b[i]
        for k in range(i):
            acc -= L[i, k] * out[k]
        out[i] = acc / L[i, i]
    for i in range(n - 1, -1, -1):
        acc = out[i]
        for k in range(i + 1, n):
            acc -= L[k, i] * out[k]
        out[i] = acc / L[i, i]


@numba.njit(cache=True)
def _newton_step(Hb, cpl, n_glob, grad, dx):
    """dx = -H^-1 grad for H = blockdiag(Hb) + sum_g cpl[g] v_g v_g^T by Woodbury (a Cholesky per cluster
    plus an n_glob x n_glob system); False once rounding makes H indefinite far along the central path."""
    N, nv, _ = Hb.shape
    ainv_v = np.zeros((n_glob, N * nv))
    e = np.zeros(nv)
    tmp = np.zeros(nv)
    rhs_n = np.zeros(nv)
    for n in range(N):
        if not _chol(Hb[n]):
            return False
        for i in range(nv):
            rhs_n[i] = -grad[nv * n + i]
        _chol_apply(Hb[n], rhs_n, tmp)
        dx[nv * n:nv * n + nv] = tmp
        for g in range(n_glob):
            e[:] = 0.0
            e[g] = 1.0
            _chol_apply(Hb[n], e, tmp)
            ainv_v[g, nv * n:nv * n + nv] = tmp
    # (C^-1 + V^T A^-1 V) y = V^T A^-1 (-grad);  dx = A^-1 (-grad) - A^-1 V y
    M = np.zeros((n_glob, n_glob))
    rhs = np.zeros(n_glob)
    for g in range(n_glob):
        M[g, g] += 1.0 / cpl[g]
        for n in range(N):
            rhs[g] += dx[nv * n + g]
            for h in range(n_glob):
                M[g, h] += ainv_v[h, nv * n + g]
    if n_glob == 1:
        y0 = rhs[0] / M[0, 0]
        y1 = 0.0
    else:
        det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
        if det == 0.0:
            return False
        y0 = (M[1, 1] * rhs[0] - M[0, 1] * rhs[1]) / det
        y1 = (M[0, 0] * rhs[1] - M[1, 0] * rhs[0]) / det
    for i in range(N * nv):
        dx[i] -= ainv_v[0, i] * y0
        if n_glob == 2:
            dx[i] -= ainv_v[1, i] * y1
    return True


@numba.njit(cache=True)
def solve_aggregated(block, z0, d, prm, has, wf_b, wf_th, wf_n, caps, gap_rel, max_newton):
    """Log-barrier Newton method (central path, tau x 20 per stage) on the aggregated block."""
    N, nv = z0.shape
    n = nv * N
    n_con = (2 * nv) * N + 2  # constraints: the duality gap on the central path is n_con / tau
    z = z0.copy()
    grad = np.zeros(n)
    Hb = np.zeros((N, nv, nv))
    cpl = np.zeros(2)
    n_glob = 2 if block == 2 else 1
    zn = z.copy()
    dx = np.zeros(n)
    obj = 0.0
    for k in range(N):
        obj += _a_s(block, d[k]) * z[k, nv - 2] + z[k, nv - 1]
    tau = max(1.0, n_con / max(obj, 1e-9))
    steps = 0
    done = False
    while not done:
        for _ in range(max_newton):
            f0 = _total(block, z, tau, d, prm, has, wf_b, wf_th, wf_n, caps, grad, Hb, cpl, True)
            ok = _newton_step(Hb, cpl, n_glob, grad, dx)
            lam2 = -np.dot(grad, dx)
            steps += 1
            if not ok or lam2 < 0.0:
                done = True
                break
            if lam2 < 1e-10:
                break
            step = 1.0
            while step > 1e-14:
                for k in range(N):
                    for i in range(nv):
                        zn[k, i] = z[k, i] + step * dx[nv * k + i]
                f1 = _total(block, zn, tau, d, prm, has, wf_b, wf_th, wf_n, caps, grad, Hb, cpl, False)
                if f1 <= f0 - 0.25 * step * lam2:
                    break
                step *= 0.5
            if step <= 1e-14:
                break
            z[:, :] = zn
        obj = 0.0
        for k in range(N):
            obj += _a_s(block, d[k]) * z[k, nv - 2] + z[k, nv - 1]
        if n_con / tau < gap_rel * max(obj, 1e-9):
            break
        tau *= 50.0
    return z, steps
