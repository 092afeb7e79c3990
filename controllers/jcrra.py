"""JCRRA: joint compression-ratio and resource allocation for a LEO serving EO users ([P002], docs/jcrra.md).

One LEO serves U users over S sub-channels and T time slots. User u asks for n_u source values (its images),
an SSIM of at least q_u and delivery within D_u slots. It picks a JSCC ratio r_m from the options; that sets
its symbols r_m n_u, hence the slots it needs, L_um = ceil(r_m n_u / (symbols per slot)), and the least SNR
meeting q_u, gamma_um (from the SSIM(CR, SNR) surface). Each slot a sub-channel serves at most one user, a user
holds at most one sub-channel, the slot's powers share the budget P_max; serving (u, s, t) costs
p = gamma / g_ust (g: SNR per watt). Minimise the total transmit power.

- `exact_assignment`: the best association and power for given options (a MILP, HiGHS through scipy).
- `exhaustive`: every option vector, each with `exact_assignment`: the optimum (small instances).
- `jcrra`: [P002]'s Algorithm 1 in our form: relax the association to [0, 1] and the ratio to a continuous
  rho_u in [r_1, r_M]; successive convex approximation: each step replaces the non-convex power
  sum_u gamma_u(rho_u) sum_st x_ust / g_ust by its first-order expansion at the current point, solves that LP
  within a trust region on rho, and keeps the step only when the true relaxed power falls (else the region
  halves); then rounds rho to the nearest option (8a) and recovers the association and power exactly for
  those options (9a) (when the rounded ratios overrun a delay limit, from the lowest ratio for all instead).
  The relaxation counts slots without their rounding up, so the rounded ratios are often not the best ones:
  a local search follows, moving one user's ratio a step up or down, else two users' at once, while the exact
  power falls.
- `greedy_jscc` (Algorithm 2): one fixed ratio for all; (u, s, t) taken in descending channel gain until each
  user has its slots; the least power meeting the SSIM requirement.
- `greedy_jpeg` (Algorithm 3): JPEG at the quality meeting the SSIM requirement; the same channel uses as
  greedy JSCC, chosen the same way; water-filling power so the Shannon rate carries the JPEG files.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from sagin_hil.calibration.ssim_surface import SsimSurface, jpeg_bits_for

__all__ = ["JcrraProblem", "JcrraSolution", "exact_assignment", "exhaustive", "jcrra", "greedy_jscc", "greedy_jpeg",
           "waterfill_power"]


@dataclass
class JcrraProblem:
    """One instance. gain: (U, S, T) SNR per watt of user u on sub-channel s in slot t (0: not visible);
    ratios: the JSCC options, ascending; source_values: (U,) n_u; ssim_min: (U,) q_u; delay_slots: (U,) D_u;
    symbols_per_slot: B_s x T_s (zero roll-off); power_budget_w: P_max per slot over all sub-channels;
    surface: SSIM(CR, SNR); values_per_image: source values of one image (the JPEG baseline counts images)."""

    gain: np.ndarray
    ratios: tuple[float, ...]
    source_values: np.ndarray
    ssim_min: np.ndarray
    delay_slots: np.ndarray
    symbols_per_slot: float
    power_budget_w: float
    surface: SsimSurface
    values_per_image: int = 3 * 64 * 64

    def __post_init__(self) -> None:
        self.gain = np.asarray(self.gain, float)
        if self.gain.ndim != 3 or np.any(~np.isfinite(self.gain)) or np.any(self.gain < 0):
            raise ValueError(f"gain must be a finite (U, S, T) array >= 0; got shape {self.gain.shape}")
        U, _, T = self.gain.shape
        self.ratios = tuple(float(r) for r in self.ratios)
        if not self.ratios or list(self.ratios) != sorted(set(self.ratios)) or not 0 < self.ratios[0]:
            raise ValueError(f"ratios {self.ratios} must be distinct, ascending and > 0, e.g. (1/12, 1/6)")
        self.source_values = np.asarray(self.source_values, float).reshape(U)
        self.ssim_min = np.asarray(self.ssim_min, float).reshape(U)
        self.delay_slots = np.asarray(self.delay_slots, int).reshape(U)
        if np.any(self.delay_slots < 1) or np.any(self.delay_slots > T):
            raise ValueError(f"delay_slots {self.delay_slots.tolist()} must lie in 1..T = {T}")
        if self.symbols_per_slot <= 0 or self.power_budget_w <= 0:
            raise ValueError(f"symbols_per_slot = {self.symbols_per_slot}, power_budget_w = {self.power_budget_w}: "
                             "both must be > 0")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.gain.shape  # type: ignore[return-value]

    def allowed(self) -> np.ndarray:
        """(U, S, T) bool: the slot is within the user's delay limit and the satellite is heard."""
        t = np.arange(self.shape[2])
        return (t[None, None, :] < self.delay_slots[:, None, None]) & (self.gain > 0)

    def slots_needed(self, ratio: Any) -> np.ndarray:
        """(U,) slots of user u at ratio (U,) or a scalar, rounded up; fractional with `exact=False` use."""
        return np.ceil(np.asarray(ratio, float) * self.source_values / self.symbols_per_slot - 1e-9).astype(int)

    def snr_db_target(self, ratio: Any) -> np.ndarray:
        """(U,) least SNR (dB) meeting each user's SSIM at `ratio`; the surface is not trusted below its
        measured range (held at its lower end); inf when the ratio cannot reach the requirement."""
        s = self.surface.snr_db_for(ratio, self.ssim_min)
        return np.maximum(s, self.surface.snr_range_db[0])

    def snr_target(self, ratio: Any) -> np.ndarray:
        return 10 ** (self.snr_db_target(ratio) / 10)


@dataclass
class JcrraSolution:
    """option: (U,) index into ratios; assign: (U, S, T) bool; power_w: (U, S, T); total_power_w: the objective
    (inf when infeasible); info: how it was found."""

    option: np.ndarray
    assign: np.ndarray
    power_w: np.ndarray
    total_power_w: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return math.isfinite(self.total_power_w)

    @property
    def power_dbw(self) -> float:
        return 10 * math.log10(self.total_power_w) if self.feasible and self.total_power_w > 0 else math.inf


def _infeasible(p: JcrraProblem, option: np.ndarray, why: str) -> JcrraSolution:
    z = np.zeros(p.shape)
    return JcrraSolution(np.asarray(option), z.astype(bool), z, math.inf, {"why": why})


def _structure(p: JcrraProblem) -> tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]:
    """Incidence matrices over the flattened (u, s, t) variables: per user, per (user, slot), per (sub-channel,
    slot) and per slot (the budget rows take the costs)."""
    U, S, T = p.shape
    idx = np.arange(U * S * T).reshape(U, S, T)
    u_ix, s_ix, t_ix = np.meshgrid(np.arange(U), np.arange(S), np.arange(T), indexing="ij")
    cols = idx.ravel()
    ones = np.ones(cols.size)
    per_user = sparse.csr_matrix((ones, (u_ix.ravel(), cols)), shape=(U, cols.size))
    per_user_slot = sparse.csr_matrix((ones, ((u_ix * T + t_ix).ravel(), cols)), shape=(U * T, cols.size))
    per_channel_slot = sparse.csr_matrix((ones, ((s_ix * T + t_ix).ravel(), cols)), shape=(S * T, cols.size))
    return per_user, per_user_slot, per_channel_slot


def _slot_rows(p: JcrraProblem, cost: np.ndarray) -> sparse.csr_matrix:
    U, S, T = p.shape
    t_ix = np.broadcast_to(np.arange(T), (U, S, T)).ravel()
    return sparse.csr_matrix((cost.ravel(), (t_ix, np.arange(U * S * T))), shape=(T, U * S * T))


def exact_assignment(p: JcrraProblem, option: Any) -> JcrraSolution:
    """The least-power association and power for the ratio options `option` (U,) (a MILP: binary association
    x_ust, cost gamma_u / g_ust, each user its slots within its delay limit, one sub-channel per user and slot,
    one user per sub-channel and slot, the slot budget)."""
    option = np.asarray(option, int)
    ratio = np.asarray(p.ratios)[option]
    need = p.slots_needed(ratio)
    gamma = p.snr_target(ratio)
    allowed = p.allowed()
    if np.any(~np.isfinite(gamma)):
        return _infeasible(p, option, f"SSIM requirement out of reach at the chosen ratio for users "
                                      f"{np.flatnonzero(~np.isfinite(gamma)).tolist()}")
    slots_free = allowed.any(axis=1).sum(axis=1)
    if np.any(need > slots_free):
        return _infeasible(p, option, f"users {np.flatnonzero(need > slots_free).tolist()} need more slots than "
                                      "their delay limit leaves")
    with np.errstate(divide="ignore"):
        cost = np.where(allowed, gamma[:, None, None] / np.where(allowed, p.gain, 1.0), 0.0)
    per_user, per_user_slot, per_channel_slot = _structure(p)
    budget = _slot_rows(p, cost)
    A = sparse.vstack([per_user, per_user_slot, per_channel_slot, budget]).tocsr()
    U, S, T = p.shape
    lo = np.concatenate([need, np.zeros(U * T + S * T + T)])
    hi = np.concatenate([np.full(U, np.inf), np.ones(U * T + S * T), np.full(T, p.power_budget_w)])
    scale = float(np.max(cost[allowed])) if allowed.any() else 1.0
    res = milp(cost.ravel() / scale, integrality=np.ones(cost.size), bounds=Bounds(0, allowed.ravel().astype(float)),
               constraints=LinearConstraint(A, lo, hi), options={"mip_rel_gap": 1e-9})
    if res.x is None:
        return _infeasible(p, option, f"no association meets every constraint ({res.message})")
    assign = (res.x > 0.5).reshape(p.shape)
    power = np.where(assign, cost, 0.0)
    return JcrraSolution(option, assign, power, float(power.sum()), {"method": "milp"})


def exhaustive(p: JcrraProblem) -> JcrraSolution:
    """The optimum: every ratio option vector (M^U of them), each with its exact association and power."""
    best = _infeasible(p, np.zeros(p.shape[0], int), "no option vector is feasible")
    for option in itertools.product(range(len(p.ratios)), repeat=p.shape[0]):
        sol = exact_assignment(p, option)
        if sol.total_power_w < best.total_power_w:
            best = sol
    best.info = {**best.info, "method": "exhaustive", "option_vectors": len(p.ratios) ** p.shape[0]}
    return best


# -- JCRRA: SCA on the relaxed problem, then rounding ---------------------------------------------------------
def _rho_min(p: JcrraProblem) -> np.ndarray:
    """(U,) the least continuous ratio at which each user's SSIM is reachable (nan: not even at r_M)."""
    lo_r, hi_r = p.ratios[0], p.ratios[-1]
    out = np.full(p.shape[0], np.nan)
    for u, q in enumerate(p.ssim_min):
        if p.surface.ceiling(hi_r) <= q + 1e-6:
            continue
        a, b = lo_r, hi_r
        if p.surface.ceiling(a) > q + 1e-6:
            out[u] = a
            continue
        for _ in range(60):
            m = 0.5 * (a + b)
            a, b = (m, b) if p.surface.ceiling(m) <= q + 1e-6 else (a, m)
        out[u] = b * 1.001
    return out


def _gamma(p: JcrraProblem, rho: np.ndarray) -> np.ndarray:
    return p.snr_target(rho)


def jcrra(p: JcrraProblem, max_iter: int = 60, tol: float = 1e-7, max_passes: int = 4) -> JcrraSolution:
    """[P002] Algorithm 1 (see the module docstring): SCA on the relaxed problem, rounding, exact recovery."""
    U, S, T = p.shape
    rho_lo = _rho_min(p)
    if np.any(np.isnan(rho_lo)):
        return _infeasible(p, np.full(U, len(p.ratios) - 1), f"users {np.flatnonzero(np.isnan(rho_lo)).tolist()} "
                           "cannot reach their SSIM at any ratio")
    rho_hi = np.full(U, p.ratios[-1])
    allowed = p.allowed()
    inv_g = np.where(allowed, 1.0 / np.where(allowed, p.gain, 1.0), 0.0)
    per_user, per_user_slot, per_channel_slot = _structure(p)
    n_x = U * S * T
    sym = p.source_values / p.symbols_per_slot
    # symbols: sum_st x_ust - (n_u / symbols per slot) rho_u >= 0
    A_sym = sparse.hstack([per_user, sparse.diags(-sym)]).tocsr()
    A_assoc = sparse.hstack([sparse.vstack([per_user_slot, per_channel_slot]), sparse.csr_matrix((U * T + S * T, U))])

    def objective(x: np.ndarray, rho: np.ndarray) -> float:
        return float(np.sum(_gamma(p, rho)[:, None, None] * inv_g * x.reshape(U, S, T)))

    def slot_power(x: np.ndarray, rho: np.ndarray) -> np.ndarray:
        return np.sum(_gamma(p, rho)[:, None, None] * inv_g * x.reshape(U, S, T), axis=(0, 1))

    def step(x_k: np.ndarray | None, rho_k: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray] | None:
        g_k = _gamma(p, rho_k)
        h = 1e-6 * max(p.ratios[-1], 1e-9)
        dg = (_gamma(p, np.minimum(rho_k + h, rho_hi)) - _gamma(p, np.maximum(rho_k - h, rho_lo))) / (
            np.minimum(rho_k + h, rho_hi) - np.maximum(rho_k - h, rho_lo))
        cx = (g_k[:, None, None] * inv_g).ravel()
        if x_k is None:  # the first point: rho held, the LP in x alone
            dg = np.zeros(U)
            lo_r, hi_r = rho_k, rho_k
            base = np.zeros(U)
        else:
            lo_r, hi_r = np.maximum(rho_lo, rho_k - delta), np.minimum(rho_hi, rho_k + delta)
            base = (inv_g * x_k.reshape(U, S, T)).sum(axis=(1, 2))  # C_u at the current point
        c = np.concatenate([cx, dg * base])
        # the slot budget, linearised the same way
        t_ix = np.broadcast_to(np.arange(T), (U, S, T)).ravel()
        B_x = sparse.csr_matrix((cx, (t_ix, np.arange(n_x))), shape=(T, n_x))
        if x_k is None:
            B_r, b_off = sparse.csr_matrix((T, U)), np.zeros(T)
        else:
            per_slot = inv_g * x_k.reshape(U, S, T)  # (U, S, T)
            coef = dg[:, None] * per_slot.sum(axis=1)  # (U, T)
            B_r, b_off = sparse.csr_matrix(coef.T), (coef * rho_k[:, None]).sum(axis=0)
        A_budget = sparse.hstack([B_x, B_r]).tocsr()
        A_ub = sparse.vstack([-A_sym, A_assoc, A_budget]).tocsr()
        b_ub = np.concatenate([np.zeros(U), np.ones(U * T + S * T), p.power_budget_w + b_off])
        bounds = np.concatenate([np.stack([np.zeros(n_x), allowed.ravel().astype(float)], 1),
                                 np.stack([lo_r, hi_r], 1)])
        scale = float(np.max(np.abs(c))) or 1.0
        res = linprog(c / scale, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status != 0:
            return None
        return res.x[:n_x], res.x[n_x:]

    rho = np.clip(np.sqrt(rho_lo * rho_hi), rho_lo, rho_hi)  # start mid-way (geometric) in the options' span
    first = step(None, rho, 0.0)
    if first is None:  # tight delay limits: the fewest symbols leave the most room
        rho = rho_lo.copy()
        first = step(None, rho, 0.0)
    if first is None:
        return _infeasible(p, np.full(U, len(p.ratios) - 1), "the relaxed problem is infeasible")
    x = first[0]
    f = objective(x, rho)
    delta = 0.25 * (p.ratios[-1] - p.ratios[0]) if len(p.ratios) > 1 else 0.0
    trace = [f]
    it = 0
    for it in range(1, max_iter + 1):
        if delta < 1e-6 * p.ratios[-1]:
            break
        cand = step(x, rho, delta)
        if cand is None:
            delta /= 2
            continue
        x_new, rho_new = cand
        f_new = objective(x_new, rho_new)
        ok = f_new < f * (1 - tol) and np.all(slot_power(x_new, rho_new) <= p.power_budget_w * (1 + 1e-6))
        if ok:
            x, rho, f = x_new, rho_new, f_new
            trace.append(f)
            delta = min(2 * delta, p.ratios[-1] - p.ratios[0])
        else:
            delta /= 2
    relaxed = {"relaxed_power_w": f, "rho": rho.tolist(), "sca_iterations": it, "sca_trace_w": trace}
    # (8a): each user's ratio to the nearest option (log scale); (9a): association and power exactly
    r = np.log(np.asarray(p.ratios))
    nearest = np.abs(np.log(rho)[:, None] - r[None, :]).argmin(axis=1)
    best = exact_assignment(p, nearest)
    tried = 1
    if not best.feasible:  # the rounded ratios overrun a delay limit: start from the fewest symbols instead
        best = exact_assignment(p, np.zeros(U, int))
        tried += 1
    def moves(option: np.ndarray, users: tuple[int, ...]):
        """Each of `users` one option up or down (every combination), staying within the options."""
        steps = [[d for d in (-1, 1) if 0 <= option[u] + d < len(r)] for u in users]
        for combo in itertools.product(*steps):
            out = option.copy()
            out[list(users)] += combo
            yield out

    passes = 0
    for passes in range(1, max_passes + 1):  # local search: one user's ratio a step, else two users' at once
        improved = False
        for group in itertools.chain(((u,) for u in range(U)), itertools.combinations(range(U), 2)):
            if improved and len(group) == 2:
                break  # a single move helped: take the next pass before trying pairs
            for option in moves(best.option, group):
                cand_sol = exact_assignment(p, option)
                tried += 1
                if cand_sol.total_power_w < best.total_power_w * (1 - 1e-9):
                    best, improved = cand_sol, True
        if not improved:
            break
    best.info = {**best.info, **relaxed, "method": "jcrra", "rounded_option": nearest.tolist(),
                 "assignments_solved": tried, "local_search_passes": passes}
    return best


# -- the greedy baselines -------------------------------------------------------------------------------------
def _greedy_association(p: JcrraProblem, need: np.ndarray, cost: np.ndarray | None) -> np.ndarray | None:
    """(u, s, t) in descending gain: take it when the user still needs slots, the sub-channel is free in that
    slot, the user holds no other sub-channel then, and (with `cost`) the slot budget allows it."""
    U, S, T = p.shape
    allowed = p.allowed()
    order = np.argsort(-np.where(allowed, p.gain, -1.0), axis=None, kind="stable")
    assign = np.zeros(p.shape, bool)
    left = need.copy()
    used_sc = np.zeros((S, T), bool)
    user_slot = np.zeros((U, T), bool)
    slot_w = np.zeros(T)
    for flat in order:
        u, s, t = np.unravel_index(flat, p.shape)
        if not allowed[u, s, t] or not left.any():
            if not left.any():
                break
            continue
        if left[u] == 0 or used_sc[s, t] or user_slot[u, t]:
            continue
        if cost is not None and slot_w[t] + cost[u, s, t] > p.power_budget_w:
            continue
        assign[u, s, t] = used_sc[s, t] = user_slot[u, t] = True
        left[u] -= 1
        if cost is not None:
            slot_w[t] += cost[u, s, t]
    return assign if not left.any() else None


def greedy_jscc(p: JcrraProblem, option: int = 0) -> JcrraSolution:
    """[P002] Algorithm 2: every user at ratio option `option`; association by channel gain; least power."""
    U = p.shape[0]
    opt = np.full(U, option)
    ratio = np.full(U, p.ratios[option])
    gamma = p.snr_target(ratio)
    if np.any(~np.isfinite(gamma)):
        return _infeasible(p, opt, "SSIM requirement out of reach at the fixed ratio")
    allowed = p.allowed()
    cost = np.where(allowed, gamma[:, None, None] / np.where(allowed, p.gain, 1.0), np.inf)
    assign = _greedy_association(p, p.slots_needed(ratio), cost)
    if assign is None:
        return _infeasible(p, opt, "the greedy association cannot give every user its slots")
    power = np.where(assign, cost, 0.0)
    return JcrraSolution(opt, assign, power, float(power.sum()), {"method": "greedy_jscc"})


def waterfill_power(gain: np.ndarray, bits: float, symbols_per_slot: float) -> np.ndarray:
    """Least total power carrying `bits` over parallel slots of SNR-per-watt `gain` at the Shannon rate
    (symbols_per_slot x log2(1 + p g) bits per slot): p_i = (mu - 1/g_i)^+."""
    g = np.sort(np.asarray(gain, float))[::-1]
    order = np.argsort(-np.asarray(gain, float), kind="stable")
    need = bits / symbols_per_slot  # sum of log2(1 + p g) over the slots
    p_sorted = np.zeros_like(g)
    for k in range(len(g), 0, -1):  # the most slots whose water level stays above every 1/g_i
        log_mu = (need + np.sum(np.log2(1.0 / g[:k]))) / k
        mu = 2.0**log_mu
        if mu > 1.0 / g[k - 1]:
            p_sorted[:k] = mu - 1.0 / g[:k]
            break
    out = np.zeros_like(p_sorted)
    out[order] = p_sorted
    return out


def greedy_jpeg(p: JcrraProblem, jpeg_table: dict[str, Any], option: int = 0) -> JcrraSolution:
    """[P002] Algorithm 3: JPEG files at the quality meeting each user's SSIM, carried at the Shannon rate over
    the channel uses greedy JSCC at ratio option `option` would hold (the same bandwidth, chosen the same way by
    gain), power by water-filling per user."""
    U = p.shape[0]
    opt = np.full(U, option)
    bits = np.array([jpeg_bits_for(jpeg_table, q) for q in p.ssim_min]) * p.source_values / p.values_per_image
    if np.any(~np.isfinite(bits)):
        return _infeasible(p, opt, "JPEG cannot reach the SSIM requirement")
    need = p.slots_needed(np.full(U, p.ratios[option]))
    assign = _greedy_association(p, need, None)
    if assign is None:
        return _infeasible(p, opt, "the greedy association cannot give every user its slots")
    uses = p.ratios[option] * p.source_values / need  # JSCC's channel uses per slot: the same bandwidth
    power = np.zeros(p.shape)
    for u in range(U):
        where = np.nonzero(assign[u])
        power[u][where] = waterfill_power(p.gain[u][where], bits[u], uses[u])
    over = bool(np.any(power.sum(axis=(0, 1)) > p.power_budget_w * (1 + 1e-9)))  # reported, not hidden as inf
    return JcrraSolution(opt, assign, power, float(power.sum()), {"method": "greedy_jpeg", "bits": bits.tolist(),
                                                                  "over_budget": over})
