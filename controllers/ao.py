"""Alternating optimisation (AO) for the aerial semantic relay of [P001] (docs/references.md).

One satellite serves N UAV relays (FDMA, bandwidth B_n and power P_n each); UAV n at fixed height H and
horizontal position q_n serves m users (SemUsers and ConUsers) with bandwidth b_u and power p_u. The AO
maximises the delivered sum rate (equivalent conventional bit/s) over the blocks

    P3  bandwidth (B, b, t)          convex; barrier Newton on its KKT conditions
    P4  auxiliary bounds (t, f)      closed form (fractional knapsack under the relay cap)
    P5  power (P, p, t)              convex; barrier Newton, water-filling inside each kind of user
    P5  position q                   weighted-centroid minorize-maximize step

Scheme "joint" (default) solves P3 and the power part of P5 as one convex block (faster, and it reaches
a higher optimum); scheme "paper" alternates them separately. Every step starts from the previous point,
which is feasible for it, and is kept only if the objective does not fall, so the objective rises
monotonically. The model and its normalisation are written out in docs/controllers.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sagin_hil.controllers import ao_solvers as S
from pydantic import BaseModel, ConfigDict, Field

from sagin_hil.controllers.base import Controller
from sagin_hil.datatypes import Allocation, ControllerState, HopAllocation, Plan, Route, link_id, parse_link_id

__all__ = ["RelayScenario", "AoResult", "AlternatingOptimizer", "BlockSolvers", "AoController", "AoOptions", "BLOCKS",
           "delivered_rates", "relay_system"]

BLOCKS = ("bandwidth", "power", "position")
LOGISTIC_SLOPE_PER_DB = math.log(10) / 10  # C1 that makes eps a Michaelis-Menten curve in linear SNR


@dataclass
class RelayScenario:
    """Positions, channels and budgets of the semantic relay network (defaults: docs/controllers.md).

    users_xy_m: (N, m, 2) user positions; is_semantic: (N, m) True for SemUsers; sat_gain_db: (N,) power
    gain of each satellite->UAV equivalent scalar channel (MRT beam gain included).
    """

    users_xy_m: np.ndarray
    is_semantic: np.ndarray
    sat_gain_db: np.ndarray
    uav_height_m: float = 1000.0
    sat_bandwidth_hz: float = 40e6
    uav_bandwidth_hz: float = 10e6
    sat_power_w: float = 1000.0
    uav_power_w: float = 1.0
    noise_psd_dbm_hz: float = -174.0
    beta0_db: float = -60.0
    symbols_per_unit: float = 48.0  # K: semantic symbols per data unit
    suts_per_unit: float = 4.0  # I: semantic units per data unit
    bits_per_symbol: float = 4.0  # mu: bits to carry one semantic symbol on a bit link
    bits_per_unit: float = 384.0  # L: bits of one data unit sent conventionally
    eps_low: float = 0.37  # A1: similarity at very low SNR
    eps_high: float = 0.98  # A2: similarity at very high SNR
    eps_mid_db: float = 5.0  # SNR (dB) where eps is halfway (sets C2 = -C1 * mid)
    flops_sem: float = 2.0  # FLOPs per semantic unit relayed to a SemUser
    flops_con: float = 4.0  # ... decoded for a ConUser
    flops_per_cycle: float = 2.0
    kappa: float = 1e-18  # effective switched capacitance: compute power kappa f^3 (W, f in cycles/s)
    snr_gap_db: float = 0.0  # Gamma: the UAV->user rate is b log2(1 + SNR / Gamma) (0 dB: Shannon, as in [P001])

    def __post_init__(self) -> None:
        self.users_xy_m = np.asarray(self.users_xy_m, float)
        self.is_semantic = np.asarray(self.is_semantic, bool)
        self.sat_gain_db = np.asarray(self.sat_gain_db, float)
        n, m = self.is_semantic.shape
        if self.users_xy_m.shape != (n, m, 2) or self.sat_gain_db.shape != (n,):
            raise ValueError(f"RelayScenario shapes disagree: users_xy_m {self.users_xy_m.shape} should be "
                             f"{(n, m, 2)}, sat_gain_db {self.sat_gain_db.shape} should be {(n,)}")
        for name in ("uav_height_m", "sat_bandwidth_hz", "uav_bandwidth_hz", "sat_power_w", "uav_power_w", "kappa",
                     "symbols_per_unit", "bits_per_symbol", "bits_per_unit"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RelayScenario.{name} = {getattr(self, name)!r} must be > 0")
        if not 0 <= self.eps_low < self.eps_high <= 1:
            raise ValueError(f"need 0 <= eps_low < eps_high <= 1; got {self.eps_low}, {self.eps_high}")

    @classmethod
    def random(cls, n_clusters: int = 5, n_sem: int = 4, n_con: int = 4, seed: int = 0, spacing_m: float = 5000.0,
               square_m: float = 1000.0, sat_gain_db: float = -155.0, sat_gain_spread_db: float = 3.0,
               **params: Any) -> RelayScenario:
        """Clusters on a line `spacing_m` apart, users uniform in `square_m` squares (paper 001 Sec. V)."""
        rng = np.random.default_rng(seed)
        m = n_sem + n_con
        centres = np.stack([np.arange(n_clusters) * spacing_m, np.zeros(n_clusters)], 1)
        users = centres[:, None, :] + rng.uniform(-square_m / 2, square_m / 2, size=(n_clusters, m, 2))
        is_sem = np.zeros((n_clusters, m), bool)
        is_sem[:, :n_sem] = True
        gains = sat_gain_db + rng.uniform(-sat_gain_spread_db, sat_gain_spread_db, n_clusters)
        return cls(users, is_sem, gains, **params)

    @property
    def shape(self) -> tuple[int, int]:
        return self.is_semantic.shape

    def similarity(self, snr_db: np.ndarray) -> np.ndarray:
        """Semantic similarity eps(K, SNR): generalised logistic A1 + (A2 - A1) / (1 + exp(-(C1 x + C2)))."""
        c1 = LOGISTIC_SLOPE_PER_DB
        x = np.asarray(snr_db, float) - self.eps_mid_db
        return self.eps_low + (self.eps_high - self.eps_low) / (1 + np.exp(-c1 * x))

    @property
    def semantic_gain(self) -> float:
        """Equivalent conventional bits delivered per bit sent to a SemUser: L / (K mu)."""
        return self.bits_per_unit / (self.symbols_per_unit * self.bits_per_symbol)

    def constants(self, q: np.ndarray) -> dict[str, Any]:
        """Normalised constants of the solvers for UAV positions q (N, 2)."""
        n0 = 10 ** (self.noise_psd_dbm_hz / 10) / 1000
        bu, pu = self.uav_bandwidth_hz, self.uav_power_w
        d2 = self.uav_height_m**2 + ((self.users_xy_m - q[:, None, :]) ** 2).sum(-1)
        h = 10 ** (self.beta0_db / 10) / d2
        s = pu * h / (n0 * bu) / 10 ** (self.snr_gap_db / 10)
        a = np.where(self.is_semantic, self.semantic_gain, 1.0)
        flops = np.where(self.is_semantic, self.flops_sem, self.flops_con)
        # cycles per equivalent bit delivered: FLOPs per sut x suts per bit / FLOPs per cycle
        phi = flops * self.suts_per_unit / (self.bits_per_unit * self.flops_per_cycle) * a
        G = self.sat_power_w * 10 ** (self.sat_gain_db / 10) / (n0 * bu)
        prm = np.array([
            self.bits_per_unit / self.symbols_per_unit,  # c: equivalent bits per semantic symbol
            self.eps_low, self.eps_high - self.eps_low,
            10 ** (self.eps_mid_db / 10),  # g0: with C1 = ln10/10, eps = A1 + A gamma / (gamma + g0)
            self.kappa * bu**3 / pu,  # k3
            self.sat_bandwidth_hz / bu,  # beta_s
        ])
        return {"s": s, "a": a, "phi": phi, "G": G, "prm": prm,
                "k_num": 10 ** (self.beta0_db / 10) * pu / (n0 * bu)}

    def centroids(self) -> np.ndarray:
        return self.users_xy_m.mean(1)

    def to_dict(self) -> dict[str, Any]:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelayScenario:
        return cls(**data)


@dataclass
class AoResult:
    """x: normalised variables (ao_solvers layout); q: (N, 2) UAV positions (m); history: objective
    (sum rate, bit/s) after every step; iterations: AO rounds; n_newton: Newton steps in all blocks."""

    x: np.ndarray
    q: np.ndarray
    history: list[float] = field(default_factory=list)
    iterations: int = 0
    n_newton: int = 0
    solve_s: float = 0.0

    @property
    def sum_rate_bps(self) -> float:
        return self.history[-1]


class BlockSolvers:
    """The subproblem solvers the AO calls (numba KKT/Newton and closed forms from ao_solvers); the
    benchmark swaps in cvxpy versions with the same signatures to run the same alternation."""

    def __init__(self, gap_rel: float = 1e-7):
        self.gap_rel = gap_rel

    def bandwidth(self, x: np.ndarray, c: dict[str, Any], is_sem: np.ndarray) -> tuple[np.ndarray, int]:
        return S.solve_bandwidth(x, c, is_sem, gap_rel=self.gap_rel)

    def power(self, x: np.ndarray, c: dict[str, Any], is_sem: np.ndarray) -> tuple[np.ndarray, int]:
        return S.solve_power(x, c, is_sem, gap_rel=self.gap_rel)

    def resources(self, x: np.ndarray, c: dict[str, Any], is_sem: np.ndarray) -> tuple[np.ndarray, int]:
        return S.solve_resources(x, c, is_sem, gap_rel=self.gap_rel)

    def rates(self, x: np.ndarray, c: dict[str, Any]) -> np.ndarray:
        return S.aux_rates(x, c["s"], c["a"], c["phi"], c["G"], c["prm"])

    def centroid(self, q, users, w, k, b, h2) -> np.ndarray:
        return S.centroid_step(q, users, w, k, b, h2)


class AlternatingOptimizer:
    """AO over the blocks in `optimize` (the others stay at the equal split / cluster centroid).

    Parameters
    ----------
    scenario: the RelayScenario.
    optimize: subset of ("bandwidth", "power", "position"): the proposed scheme uses all three; the
      baselines of paper 001 drop one (fixed bandwidth, fixed power, fixed location).
    max_iter: AO rounds at most. tol: stop when a round raises the objective by less than tol (relative).
    extrapolate: after each round, try moving further along the round's step (kept only if it helps).
    scheme: "joint" (default) solves bandwidth and power as one convex block (P3 and the power part of
      P5 together) when both are optimised; "paper" alternates them as separate blocks like paper 001.
    solvers: the subproblem solvers (default BlockSolvers: numba Newton/KKT and closed forms).
    uav_comm_share: share of the UAV power given to transmission in the initial (and fixed-power) split.
    """

    def __init__(self, scenario: RelayScenario, optimize: tuple[str, ...] = BLOCKS, max_iter: int = 50,
                 tol: float = 1e-4, uav_comm_share: float = 0.8, gap_rel: float = 1e-7,
                 solvers: BlockSolvers | None = None, extrapolate: bool = True, scheme: str = "joint"):
        bad = set(optimize) - set(BLOCKS)
        if bad:
            raise ValueError(f"unknown AO block(s) {sorted(bad)}; choose from {BLOCKS}")
        if not 0 < uav_comm_share < 1:
            raise ValueError(f"uav_comm_share = {uav_comm_share} must lie in (0, 1): the rest powers computing")
        self.scn, self.optimize = scenario, tuple(optimize)
        self.max_iter, self.tol, self.share = max_iter, tol, uav_comm_share
        if scheme not in ("joint", "paper"):
            raise ValueError(f"scheme = {scheme!r}; choose 'joint' (P3 + P5 power as one convex block) or 'paper'")
        self.solvers = solvers or BlockSolvers(gap_rel)
        self.extrapolate, self.scheme = extrapolate, scheme
        self.blocks = list(self.optimize)
        if scheme == "joint" and "bandwidth" in self.optimize and "power" in self.optimize:
            self.blocks = ["resources"] + [b for b in self.optimize if b == "position"]

    def initial_point(self) -> tuple[np.ndarray, np.ndarray]:
        """Equal split: B_n = min(B_S / N, B_U / 2), the rest of B_U shared by the users; P_S / N per UAV;
        share x P_U over the users; UAVs over their users' centroid; rates from P4."""
        n, m = self.scn.shape
        x = np.zeros((n, 2 + 3 * m))
        beta_s = self.scn.sat_bandwidth_hz / self.scn.uav_bandwidth_hz
        x[:, 0] = min(beta_s / n, 0.5)
        x[:, 1] = 1.0 / n
        x[:, 2:2 + m] = ((1 - x[:, 0]) / m)[:, None]
        x[:, 2 + m:2 + 2 * m] = self.share / m
        q = self.scn.centroids()
        return self.solvers.rates(x, self.scn.constants(q)), q

    def _obj(self, x: np.ndarray, c: dict[str, Any]) -> float:
        return S.objective(x, c["a"]) * self.scn.uav_bandwidth_hz

    def run(self, x: np.ndarray | None = None, q: np.ndarray | None = None) -> AoResult:
        """Alternate the blocks from (x, q) (default: `initial_point`) until a round gains < tol."""
        t0 = time.perf_counter()
        if x is None or q is None:
            x, q = self.initial_point()
        c = self.scn.constants(q)
        res = AoResult(x, q, [self._obj(x, c)])
        for it in range(self.max_iter):
            start, x_round = res.history[-1], x
            for block in self.blocks:
                if block == "position":
                    x, q, val = self._position(x, q, res.history[-1])
                    c = self.scn.constants(q)
                else:
                    solve = getattr(self.solvers, block)
                    xn, steps = solve(x, c, self.scn.is_semantic)
                    res.n_newton += steps
                    xn = self.solvers.rates(xn, c)  # P4: tight rate bounds for the new resources
                    val = self._obj(xn, c)
                    if val >= res.history[-1]:
                        x = xn
                    else:
                        val = res.history[-1]
                res.history.append(val)
            if self.extrapolate and x is not x_round:
                x, val = self._extrapolate(x_round, x, c, res.history[-1])
                res.history.append(val)
            res.iterations = it + 1
            if res.history[-1] - start <= self.tol * abs(res.history[-1]):
                break
        res.x, res.q, res.solve_s = x, q, time.perf_counter() - t0
        return res

    def _extrapolate(self, x_old: np.ndarray, x: np.ndarray, c: dict[str, Any], current: float
                     ) -> tuple[np.ndarray, float]:
        """Try x + alpha (x - x_old), alpha = 1, 2, 4, ... (then P4) while it stays within every budget
        and helps; block-coordinate ascent zig-zags along the coupled budgets and this step follows the
        zig-zag's mean direction. Rates come from P4, so only the resource budgets need checking."""
        d = x - x_old
        best, best_val, alpha = x, current, 1.0
        m = self.scn.shape[1]
        beta_s = self.scn.sat_bandwidth_hz / self.scn.uav_bandwidth_hz
        ok = 1 + 1e-12
        while alpha <= 64:
            xt = x + alpha * d
            if (np.any(xt[:, :2] <= 0) or np.any(xt < 0) or xt[:, 0].sum() > beta_s * ok
                    or xt[:, 1].sum() > ok or np.any(xt[:, 0] + xt[:, 2:2 + m].sum(1) > ok)
                    or np.any(xt[:, 2 + m:2 + 2 * m].sum(1) >= 1)):
                break
            xt = self.solvers.rates(xt, c)
            val = self._obj(xt, c)
            if val <= best_val:
                break
            best, best_val, alpha = xt, val, 2 * alpha
        return best, best_val

    def _position(self, x: np.ndarray, q: np.ndarray, current: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Weighted-centroid step on the user-side equivalent rate sum a r, then P4; backtrack if worse."""
        m = self.scn.shape[1]
        c = self.scn.constants(q)
        b, p = x[:, 2:2 + m], x[:, 2 + m:2 + 2 * m]
        k = np.where(b > 0, c["k_num"] * p / np.where(b > 0, b, 1.0), 0.0)
        q_new = self.solvers.centroid(q, self.scn.users_xy_m, c["a"], k, b, self.scn.uav_height_m**2)
        for _ in range(6):
            cn = self.scn.constants(q_new)
            xn = self.solvers.rates(x, cn)
            val = self._obj(xn, cn)
            # When the satellite hop is the bottleneck the objective is flat in q (to rounding); the move
            # still raises what the users could take, which the next resource block turns into rate.
            if val >= current * (1 - 1e-12):
                return xn, q_new, max(val, current)
            q_new = 0.5 * (q + q_new)
        return x, q, current

def delivered_rates(scn: RelayScenario, x: np.ndarray, user_rate_bps: np.ndarray, sat_rate_bps: np.ndarray) -> np.ndarray:
    """P4's rate bounds for given hop rates: per cluster, fill the users (best equivalent rate per compute
    cycle first) up to their UAV-hop rate `user_rate_bps` (N, m) and the compute the UAV's remaining power
    affords, then scale down so the cluster's equivalent rate fits the satellite hop's `sat_rate_bps` (N,)
    (equivalent bit/s). Returns the delivered rate per user (N, m), bit/s (multiply by a for equivalent bits).

    With the Shannon rates of the model this is `aux_rates`; with the rates measured at sample level it is
    the sum rate the radios delivered under the same budgets.
    """
    n, m = scn.shape
    c = scn.constants(np.zeros((n, 2)))
    a, phi = c["a"], c["phi"]  # phi: compute cycles per delivered bit
    k3 = scn.kappa * scn.uav_bandwidth_hz ** 3 / scn.uav_power_w
    out = np.zeros((n, m))
    for i in range(n):
        # compute frequency the remaining power affords, in units of B_U cycles/s (as in the solvers)
        left = (max(1.0 - float(x[i, 2 + m:2 + 2 * m].sum()), 0.0) / k3) ** (1.0 / 3.0) * scn.uav_bandwidth_hz
        for k in np.argsort(phi[i] / a[i], kind="stable"):
            take = min(float(user_rate_bps[i, k]), left / phi[i, k]) if left > 0 else 0.0
            out[i, k], left = take, left - take * phi[i, k]
        val = float((a[i] * out[i]).sum())
        if val > sat_rate_bps[i]:
            out[i] *= max(float(sat_rate_bps[i]), 0.0) / val
    return out


def relay_system(state: ControllerState) -> tuple[RelayScenario, list[str], list[list[tuple[int, Route]]]]:
    """The semantic-relay system of `state`'s tasks: (RelayScenario, UAV names, per UAV its [(task id, route)]).

    One cluster per UAV with the users of the tasks routed through it (SemUsers from state.user_kind; a
    smaller cluster is padded with copies of its last user, whose resources are then unused), UAV->user
    channels from state.context["relay"] (noise_psd_dbm_hz, beta0_db), and each satellite->UAV gain from that
    hop's measured SNR (else its predicted one) at the nominal power and bandwidth.
    """
    clusters: dict[str, list[tuple[int, Route]]] = {}
    for t in state.tasks:
        r = state.routes[t.task_id][0]
        clusters.setdefault(r.uav, []).append((t.task_id, r))
    uavs = sorted(clusters)
    m = max(len(v) for v in clusters.values())
    ctx = state.context.get("relay", {})
    users, sem, gains = np.zeros((len(uavs), m, 2)), np.zeros((len(uavs), m), bool), np.zeros(len(uavs))
    for i, uav in enumerate(uavs):
        members = clusters[uav] + [clusters[uav][-1]] * (m - len(clusters[uav]))  # pad: equal cluster sizes
        for k, (_, r) in enumerate(members):
            users[i, k] = state.positions_m[r.user][:2]
            sem[i, k] = state.user_kind.get(r.user, "conventional") == "semantic"
        sat_link = link_id(members[0][1].leo, uav)
        snr_db = state.snr_db(sat_link)
        if snr_db is None:
            raise ValueError(f"AO needs the SNR of {sat_link}: a report or a prediction in the state")
        # SNR over the bandwidth (Es/N0 x Rs / B) = P_S G / (N0 B): G from the nominal power and bandwidth
        bw, p = state.bandwidth_hz[sat_link], state.power_w[members[0][1].leo]
        n0 = 10 ** (ctx.get("noise_psd_dbm_hz", -174.0) / 10) / 1000
        gains[i] = snr_db - 10 * math.log10(1 + state.rolloff) + 10 * math.log10(n0 * bw / p)
    first = clusters[uavs[0]][0][1]
    params = dict(
        uav_height_m=float(np.mean([state.positions_m[u][2] for u in uavs])),
        sat_bandwidth_hz=state.bandwidth_hz[link_id(first.leo, first.uav)],
        uav_bandwidth_hz=state.bandwidth_hz[link_id(first.uav, first.user)],
        sat_power_w=state.power_w[first.leo], uav_power_w=state.power_w[first.uav],
        **{k: ctx[k] for k in ("noise_psd_dbm_hz", "beta0_db") if k in ctx},
    )
    return RelayScenario(users, sem, gains, **params), uavs, [clusters[u] for u in uavs]


class AoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iter: int = Field(50, ge=1, le=1000, description="AO rounds at most")
    tol: float = Field(1e-4, gt=0, lt=1, description="stop when a round gains less than this (relative)")
    scheme: str = Field("joint", pattern="^(joint|paper)$", description="joint: P3 + P5 power as one block; paper: apart")
    semantic_mode: str = Field("mode3_2", description="the mode a SemUser's image is sent in (if the flowgraph allows it)")
    target_bler: float = Field(0.01, gt=0, lt=1, description="BLER target of the per-hop MCS at the allocated power and bandwidth")
    margin_db: float = Field(4.0, ge=0, le=30, description="SNR back-off of the MCS choice for fading and outdated CSI, dB")
    snr_gap_db: float = Field(0.0, ge=0, le=20, description="SNR gap of the UAV->user rate model: 0 = Shannon as in "
                              "[P001]; ~3-4 dB models the coded modulation the radios actually run")
    bits_per_pixel: float | None = Field(None, gt=0, le=8, description="Mode 1 budget (default: the task's Q_min on the J2K curve)")


class AoController(Controller):
    """The AO of [P001] as a controller (docs/controllers.md).

    From the ControllerState it builds the relay system (RelayScenario): one cluster per UAV with the users of
    the tasks routed through it (SemUsers and ConUsers from state.user_kind), the UAV->user channels from
    the scenario's reference gain and noise density (state.context["relay"]), and each satellite->UAV gain
    recalibrated from that hop's measured SNR (else its predicted SNR). The AO decides satellite power and
    bandwidth per UAV, UAV power and bandwidth per user, and UAV positions; the Plan gives every hop its
    power and bandwidth, an MCS that meets `target_bler` at the SNR those predict, and every UAV its
    waypoint. SemUsers are sent `semantic_mode`, ConUsers Mode 1. Each Allocation's `predicted` holds the
    AO's rate for that user (rate_bps: bit/s delivered, equivalent_rate_bps: times the semantic gain).
    """

    name = "ao"

    Options = AoOptions
    optimize: tuple[str, ...] = BLOCKS

    def __init__(self, max_iter: int = 50, tol: float = 1e-4, scheme: str = "joint", semantic_mode: str = "mode3_2",
                 target_bler: float = 0.01, margin_db: float = 4.0, snr_gap_db: float = 0.0,
                 bits_per_pixel: float | None = None):
        from sagin_hil.controllers.link_adaptation import LinkAdaptation

        self.max_iter, self.tol, self.scheme = max_iter, tol, scheme
        self.semantic_mode, self.bits_per_pixel, self.snr_gap_db = semantic_mode, bits_per_pixel, snr_gap_db
        self.mcs_chooser = LinkAdaptation(target_bler=target_bler, margin_db=margin_db)  # per-hop MCS, J2K curve
        self.last_result: AoResult | None = None
        self.last_scenario: RelayScenario | None = None

    def allocate(self, state: ControllerState) -> Plan:
        scn, uavs, clusters = relay_system(state)
        scn.snr_gap_db = self.snr_gap_db
        ao = AlternatingOptimizer(scn, self.optimize, self.max_iter, self.tol, scheme=self.scheme)
        res = ao.run()
        self.last_scenario, self.last_result = scn, res
        n, m = scn.shape
        bu = scn.uav_bandwidth_hz
        a = scn.constants(res.q)["a"]
        semantic = self.semantic_mode if self.semantic_mode in state.modes else next(
            (md for md in state.modes if md != "mode1"), "mode1")
        plan = Plan(waypoints_m={u: (float(res.q[i, 0]), float(res.q[i, 1]), scn.uav_height_m)
                                 for i, u in enumerate(uavs)})
        tasks = {t.task_id: t for t in state.tasks}
        for i, members in enumerate(clusters):
            sat_p, sat_b = float(res.x[i, 1] * scn.sat_power_w), max(float(res.x[i, 0] * bu), 1.0)
            for k, (tid, route) in enumerate(members):
                hops = {}
                for link, p, b in ((link_id(route.leo, route.uav), sat_p, sat_b),
                                   (link_id(route.uav, route.user), float(res.x[i, 2 + m + k] * scn.uav_power_w),
                                    max(float(res.x[i, 2 + k] * bu), 1.0))):
                    hops[link] = HopAllocation(self._mcs(state, link, p, b), power_w=max(p, 0.0), bandwidth_hz=b)
                for link in route.isl_hops:
                    hops[link] = HopAllocation(self._mcs(state, link, None, None))
                mode = semantic if scn.is_semantic[i, k] else "mode1"
                bpp = self.bits_per_pixel or float(np.clip(self.mcs_chooser.quality.bpp_for(tasks[tid].quality_min_db),
                                                           self.mcs_chooser.quality.bpp[0], self.mcs_chooser.quality.bpp[-1]))
                rate = float(res.x[i, 2 + 2 * m + k] * bu)
                plan.allocations[tid] = Allocation(
                    tid, route, mode=mode, bits_per_pixel=bpp if mode == "mode1" else 0.0, hops=hops,
                    predicted={"rate_bps": rate, "equivalent_rate_bps": float(a[i, k] * rate),
                               "semantic_gain": float(a[i, k]), "snr_gap_db": self.snr_gap_db})
                plan.trail[tid] = {"route": str(route), "choice": mode, "controller": self.name,
                                   "why": f"AO over {', '.join(self.optimize)}: {res.iterations} rounds, sum rate "
                                          f"{res.sum_rate_bps / 1e6:.3f} Mbit/s equivalent",
                                   "user_kind": "semantic" if scn.is_semantic[i, k] else "conventional"}
        return plan

    def _mcs(self, state: ControllerState, link: str, power_w: float | None, bandwidth_hz: float | None) -> str:
        """The MCS the hop's SNR supports at the allocated power and bandwidth: Es/N0 scales with the power
        and inversely with the bandwidth (noise over a wider band)."""
        snr = state.snr_db(link)
        if snr is not None and power_w is not None:
            snr += 10 * math.log10(max(power_w, 1e-30) / state.power_w[parse_link_id(link)[0]])
        if snr is not None and bandwidth_hz is not None:
            snr -= 10 * math.log10(bandwidth_hz / state.bandwidth_hz[link])
        return self.mcs_chooser.choose_mcs(snr).name
