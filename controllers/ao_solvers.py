"""Solvers of the AO subproblems (docs/controllers.md gives the model and the derivations).

Variables are normalised: bandwidths by the UAV cluster budget B_U, satellite powers by P_S, UAV powers
by P_U, rates by B_U (bit/s/Hz of B_U). Per cluster n the variable row is

    x[n] = [B, P, b_0..b_{m-1}, p_0..p_{m-1}, t_0..t_{m-1}]

(satellite bandwidth and power, per-user bandwidth and power, per-user relay-hop rate bound t_u).

- `solve_bandwidth` (P3: B, b, t) and `solve_power` (P5: P, p, t): each block reduces exactly to one
  aggregated user per kind (SemUser / ConUser) per cluster, 5 variables per cluster, solved by a
  log-barrier Newton method on its KKT conditions (numba) to a duality gap of `gap_rel` x objective,
  then expanded back to users in closed form (bandwidth in proportion to s p; power by water-filling).
- `solve_resources` (P3 and the power part of P5 together, convex for fixed positions): one aggregated
  user per kind and cluster (the kind's best channel), 8 variables per cluster, same Newton method.
- `aux_rates` (P4): rate bounds t and hence UAV compute frequencies in closed form (a fractional
  knapsack under the relay cap).
- `centroid_step` (P5, position): the UAV position maximising a minorizer of the weighted user rates:
  a weighted centroid of the users in closed form (MM, one convex QP per step).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sagin_hil.controllers.ao_newton import solve_aggregated, waterfill

__all__ = ["solve_bandwidth", "solve_power", "solve_resources", "aux_rates", "centroid_step", "rates", "sat_rate",
           "objective", "RESOURCE_COST"]

LN2 = math.log(2.0)
RESOURCE_COST = 0.0  # optional cost per normalised unit of bandwidth/power used; 0 = the paper's sum rate


def _type_sums(values: np.ndarray, is_sem: np.ndarray) -> np.ndarray:
    return np.stack([(values * is_sem).sum(1), (values * ~is_sem).sum(1)], 1)


def solve_bandwidth(x: np.ndarray, c: dict, is_sem: np.ndarray, gap_rel: float = 1e-7,
                    max_newton: int = 60, delta: float = RESOURCE_COST) -> tuple[np.ndarray, int]:
    """P3: the best (B, b, t) for fixed powers and positions; returns (x_new, Newton steps).

    Aggregation: with powers fixed, sum over a type of b log2(1 + k/b) under a type bandwidth w peaks at
    b proportional to k = s p, where it equals w log2(1 + K / w), K the type's sum of k.
    """
    m = (x.shape[1] - 2) // 3
    s, a, phi, G, prm = c["s"], c["a"], c["phi"], c["G"], c["prm"]
    b, p, t = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m], x[:, 2 + 2 * m:]
    k = s * p
    K = _type_sums(k, is_sem)
    has = K > 0
    N = x.shape[0]
    d = np.zeros((N, 8))
    d[:, 0:2] = K
    d[:, 2] = G * x[:, 1]
    d[:, 3] = np.cbrt(np.maximum(1.0 - p.sum(1), 0.0) / prm[4])
    d[:, 4] = np.where(is_sem, a, 0).max(1)
    d[:, 5] = np.where(is_sem, phi, 0).max(1)
    d[:, 6] = np.where(~is_sem, phi, 0).max(1)
    W = _type_sums(b, is_sem)
    T = _type_sums(t, is_sem)
    z = np.zeros((N, 5))
    # strictly interior start: shrink bandwidth to 95 %, rates to half of what that supports
    z[:, 0] = x[:, 0] * 0.95
    z[:, 1:3] = np.where(has, np.maximum(W, 1e-6), 0) * 0.95
    tot = z[:, 0] + z[:, 1:3].sum(1)
    z[:, :3] *= np.minimum(1.0, 0.95 / tot)[:, None]
    if z[:, 0].sum() > 0.95 * prm[5]:
        z[:, 0] *= 0.95 * prm[5] / z[:, 0].sum()
    rho = np.where(has, z[:, 1:3] * np.log2(1 + K / np.where(has, z[:, 1:3], 1)), 0)
    R = sat_rate(np.column_stack([z[:, 0], x[:, 1]]), G, prm)
    val = d[:, 4] * rho[:, 0] + rho[:, 1]
    S = d[:, 5] * rho[:, 0] + d[:, 6] * rho[:, 1]
    theta = np.minimum.reduce([np.full(N, 0.5), 0.5 * R / val, 0.5 * d[:, 3] / S])
    z[:, 3:5] = np.where(has, theta[:, None] * rho, 0)
    wf = np.zeros((N, 2, 1))
    z, steps = solve_aggregated(0, z, d, np.append(prm[:4], delta), has, wf, wf, np.zeros((N, 2), np.int64),
                                np.array([prm[5]]), gap_rel, max_newton)
    out = x.copy()
    share = k / np.where(is_sem, K[:, :1], K[:, 1:2]).clip(1e-300)
    out[:, 0] = z[:, 0]
    out[:, 2:2 + m] = share * np.where(is_sem, z[:, 1:2], z[:, 2:3])
    out[:, 2 + 2 * m:] = share * np.where(is_sem, z[:, 3:4], z[:, 4:5])
    return out, steps


def solve_power(x: np.ndarray, c: dict, is_sem: np.ndarray, gap_rel: float = 1e-7,
                max_newton: int = 60, delta: float = RESOURCE_COST) -> tuple[np.ndarray, int]:
    """P5 (power): the best (P, p, t) for fixed bandwidths and positions; returns (x_new, Newton steps).

    Aggregation: a type's power P_k is split over its users by water-filling, p = b (eta - 1/s)^+.
    """
    m = (x.shape[1] - 2) // 3
    s, a, phi, G, prm = c["s"], c["a"], c["phi"], c["G"], c["prm"]
    b, p, t = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m], x[:, 2 + 2 * m:]
    N = x.shape[0]
    wf_b = np.zeros((N, 2, m))
    wf_th = np.zeros((N, 2, m))
    wf_n = np.zeros((N, 2), np.int64)
    orders = []
    for n in range(N):
        row = []
        for k, mask in enumerate((is_sem[n], ~is_sem[n])):
            idx = np.flatnonzero(mask & (b[n] > 0))
            idx = idx[np.argsort(1.0 / s[n, idx], kind="stable")]
            wf_n[n, k] = len(idx)
            wf_b[n, k, :len(idx)] = b[n, idx]
            wf_th[n, k, :len(idx)] = 1.0 / s[n, idx]
            row.append(idx)
        orders.append(row)
    has = wf_n > 0
    d = np.zeros((N, 8))
    d[:, 0], d[:, 1] = x[:, 0], G
    d[:, 2] = np.where(is_sem, a, 0).max(1)
    d[:, 3] = np.where(is_sem, phi, 0).max(1)
    d[:, 4] = np.where(~is_sem, phi, 0).max(1)
    d[:, 5] = prm[4]
    z = np.zeros((N, 5))
    z[:, 0] = x[:, 1] * 0.95
    if z[:, 0].sum() > 0.95:
        z[:, 0] *= 0.95 / z[:, 0].sum()
    Pk = np.where(has, np.maximum(_type_sums(p, is_sem), 1e-6), 0)
    Pk *= np.minimum(1.0, 0.8 / Pk.sum(1))[:, None]
    z[:, 1:3] = Pk
    psi = np.zeros((N, 2))
    for n in range(N):
        for k in range(2):
            if has[n, k]:
                psi[n, k] = waterfill(Pk[n, k], wf_b[n, k], wf_th[n, k], wf_n[n, k])[0]
    R = sat_rate(np.column_stack([x[:, 0], z[:, 0]]), G, prm)
    val = d[:, 2] * psi[:, 0] + psi[:, 1]
    S = d[:, 3] * psi[:, 0] + d[:, 4] * psi[:, 1]
    room = 1.0 - Pk.sum(1)
    theta = np.minimum.reduce([np.full(N, 0.5), 0.5 * R / val, np.cbrt(0.5 * room / prm[4]) / S])
    z[:, 3:5] = np.where(has, theta[:, None] * psi, 0)
    z, steps = solve_aggregated(1, z, d, np.append(prm[:4], delta), has, wf_b, wf_th, wf_n, np.array([1.0]),
                                gap_rel, max_newton)
    out = x.copy()
    out[:, 1] = z[:, 0]
    newp = np.zeros((N, m))
    for n in range(N):
        for k in range(2):
            if has[n, k]:
                idx = orders[n][k]
                eta = waterfill(z[n, 1 + k], wf_b[n, k], wf_th[n, k], wf_n[n, k])[3]
                newp[n, idx] = b[n, idx] * np.maximum(eta - 1.0 / s[n, idx], 0.0)
    out[:, 2 + m:2 + 2 * m] = newp
    r = b * np.log2(1 + s * newp / np.where(b > 0, b, 1))
    psi_sum = _type_sums(r, is_sem)
    out[:, 2 + 2 * m:] = r * np.where(is_sem, z[:, 3:4] / psi_sum[:, :1].clip(1e-300),
                                      z[:, 4:5] / psi_sum[:, 1:2].clip(1e-300))
    return out, steps

def rates(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Relay-hop rate caps r_u = b log2(1 + s p / b) (normalised), shape (N, m)."""
    m = (x.shape[1] - 2) // 3
    b, p = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m]
    live = b > 0
    return np.where(live, b * np.log2(1 + s * p / np.where(live, b, 1.0)), 0.0)


def sat_rate(x: np.ndarray, G: np.ndarray, prm: np.ndarray) -> np.ndarray:
    """Satellite-hop equivalent rate per cluster (normalised)."""
    c, a1, aa, g0 = prm[:4]
    B, P = x[:, 0], x[:, 1]
    return c * (a1 * B + aa * B * G * P / (G * P + g0 * B))


def objective(x: np.ndarray, a: np.ndarray) -> float:
    m = (x.shape[1] - 2) // 3
    return float((a * x[:, 2 + 2 * m:]).sum())


def aux_rates(x: np.ndarray, s, a, phi, G, prm) -> np.ndarray:
    """P4: the best rate bounds t for fixed bandwidth, power and positions (closed form).

    Per cluster: maximise sum a t with 0 <= t <= r (relay-hop capacity), sum phi t <= F (compute the
    remaining UAV power affords: k3 F^3 = 1 - sum p) and sum a t <= R (satellite hop). Without the
    satellite cap it is a fractional knapsack (fill users by a/phi, best first); the satellite cap then
    scales the rates down uniformly, which keeps the knapsack constraint.
    """
    return _aux_rates(x, s, a, phi, G, prm)


@numba.njit(cache=True)
def _aux_rates(x, s, a, phi, G, prm):
    out = x.copy()
    N, nv = x.shape
    m = (nv - 2) // 3
    c, a1, aa, g0, k3 = prm[0], prm[1], prm[2], prm[3], prm[4]
    r = np.zeros(m)
    for n in range(N):
        B, P = x[n, 0], x[n, 1]
        u = G[n] * P
        R = c * (a1 * B + aa * B * u / (u + g0 * B)) if B > 0.0 else 0.0
        sp = 0.0
        for k in range(m):
            b, p = x[n, 2 + k], x[n, 2 + m + k]
            r[k] = b * math.log2(1.0 + s[n, k] * p / b) if b > 0.0 else 0.0
            sp += p
        left = (max(1.0 - sp, 0.0) / k3) ** (1.0 / 3.0)
        order = np.argsort(phi[n] / a[n])  # best value per cycle first (stable for ties)
        val = 0.0
        for j in range(m):
            k = order[j]
            take = min(r[k], left / phi[n, k]) if left > 0.0 else 0.0
            out[n, 2 + 2 * m + k] = take
            left -= take * phi[n, k]
            val += a[n, k] * take
        if val > R:
            scale = R / val
            for k in range(m):
                out[n, 2 + 2 * m + k] *= scale
    return out


def centroid_step(q: np.ndarray, users: np.ndarray, w: np.ndarray, k: np.ndarray, b: np.ndarray, h2: float,
                  n_iter: int = 20, tol_m: float = 1e-3) -> np.ndarray:
    """UAV positions maximising sum_u w_u b_u log2(1 + k_u / (h2 + |q - u|^2)) by minorize-maximize.

    log2(1 + k/D) is convex in D = h2 + |q - u|^2, so its tangent at the current D0 is a lower bound;
    maximising the bound is min sum_u omega_u |q - u|^2 with omega_u = w_u b_u k_u / (D0 (D0 + k_u) ln 2),
    solved by the weighted centroid q = sum omega u / sum omega. Each step raises the weighted rate.

    Input
    -----
    q: (N, 2) current positions (m); users: (N, m, 2) user positions (m); w, k, b: (N, m) weights,
    SNR numerators k = s p / b (m^2) and bandwidths; h2: UAV height squared (m^2).
    """
    q = q.copy()
    for _ in range(n_iter):
        d0 = h2 + ((users - q[:, None, :]) ** 2).sum(-1)
        omega = w * b * k / (d0 * (d0 + k) * LN2)
        q_new = (omega[..., None] * users).sum(1) / omega.sum(1)[:, None]
        moved = np.abs(q_new - q).max()
        q = q_new
        if moved < tol_m:
            break
    return q


def solve_resources(x: np.ndarray, c: dict, is_sem: np.ndarray, gap_rel: float = 1e-7,
                    max_newton: int = 60, delta: float = RESOURCE_COST) -> tuple[np.ndarray, int]:
    """P3 and P5 (power) together: the best (B, P, b, p, t) for fixed positions; (x_new, Newton steps).

    The joint problem is convex. Aggregation: b log2(1 + s p / b) is jointly concave and 1-homogeneous,
    so a type's bandwidth w and power P_k are worth most on its user with the largest s, where they give
    w log2(1 + s_max P_k / w).
    """
    prm = c["prm"]
    return _resources(x, c["s"], c["a"], c["phi"], c["G"], np.append(prm[:4], delta), prm[4], prm[5],
                      np.ascontiguousarray(is_sem), gap_rel, max_newton)


@numba.njit(cache=True)
def _resources(x, s, a, phi, G, prm5, k3, beta_s, is_sem, gap_rel, max_newton):
    N, nv = x.shape
    m = (nv - 2) // 3
    best = np.full((N, 2), -1, np.int64)
    has = np.zeros((N, 2), np.bool_)
    d = np.zeros((N, 8))
    z = np.zeros((N, 8))
    for n in range(N):
        W = np.zeros(2)
        Pk = np.zeros(2)
        for k in range(m):
            kind = 0 if is_sem[n, k] else 1
            has[n, kind] = True
            if best[n, kind] < 0 or s[n, k] > s[n, best[n, kind]]:
                best[n, kind] = k
            W[kind] += x[n, 2 + k]
            Pk[kind] += x[n, 2 + m + k]
            if kind == 0:
                d[n, 3], d[n, 4] = a[n, k], phi[n, k]
            else:
                d[n, 5] = phi[n, k]
        d[n, 2], d[n, 6] = G[n], k3
        for kind in range(2):
            if has[n, kind]:
                d[n, kind] = s[n, best[n, kind]]
                W[kind] = max(W[kind], 1e-4)
                Pk[kind] = max(Pk[kind], 1e-4)
        # strictly interior start: 95 % of the bandwidth, 80 % of the UAV power, rates well inside
        shrink = min(1.0, 0.95 / (x[n, 0] + W[0] + W[1]))
        z[n, 0] = max(x[n, 0], 1e-4) * shrink
        z[n, 1] = max(x[n, 1], 1e-4)
        pshrink = min(1.0, 0.8 / (Pk[0] + Pk[1]))
        for kind in range(2):
            if has[n, kind]:
                z[n, 2 + kind] = W[kind] * shrink
                z[n, 4 + kind] = Pk[kind] * pshrink
    sb = z[:, 0].sum()
    if sb > 0.95 * beta_s:
        z[:, 0] *= 0.95 * beta_s / sb
    sp = z[:, 1].sum()
    if sp > 0.95:
        z[:, 1] *= 0.95 / sp
    for n in range(N):
        rho = np.zeros(2)
        for kind in range(2):
            if has[n, kind]:
                rho[kind] = z[n, 2 + kind] * math.log2(1.0 + d[n, kind] * z[n, 4 + kind] / z[n, 2 + kind])
        u = G[n] * z[n, 1]
        R = prm5[0] * (prm5[1] * z[n, 0] + prm5[2] * z[n, 0] * u / (u + prm5[3] * z[n, 0]))
        val = d[n, 3] * rho[0] + rho[1]
        S = d[n, 4] * rho[0] + d[n, 5] * rho[1]
        theta = min(0.5, 0.5 * R / val, (0.5 * (1.0 - z[n, 4] - z[n, 5]) / k3) ** (1.0 / 3.0) / S)
        z[n, 6], z[n, 7] = theta * rho[0], theta * rho[1]
    wf = np.zeros((N, 2, 1))
    caps = np.array([beta_s, 1.0])
    z, steps = solve_aggregated(2, z, d, prm5, has, wf, wf, np.zeros((N, 2), np.int64), caps, gap_rel, max_newton)
    out = x.copy()
    for n in range(N):
        out[n, 0], out[n, 1] = z[n, 0], z[n, 1]
        out[n, 2:] = 0.0
        for kind in range(2):
            if has[n, kind]:
                k = best[n, kind]
                out[n, 2 + k] = z[n, 2 + kind]
                out[n, 2 + m + k] = z[n, 4 + kind]
                out[n, 2 + 2 * m + k] = z[n, 6 + kind]
    return out, steps
