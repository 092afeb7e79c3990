"""The link abstraction of the SAGIN world ([P000], docs/references.md), vectorised in numpy over E environments.

The same world as the sample-level runner (scenario, candidate-route rule of controllers/world.py, FTP Model 3
tasks, SCC of controllers/scc.py), with every hop's outcome predicted from the measured tables instead of
carried as samples:

- link budgets: ISL budgets, satellite positions and LEO -> UAV budgets at the UAVs' home positions from
  `Scenario.link_state` on a time grid (cached per scenario); LEO -> UAV (Eq. 1, elevation, visibility) and
  UAV -> user budgets (Eq. 5 with the other UAVs' interference, Eq. 6) from the UAVs' current positions in
  numpy with the scenario's own formulas (tested against `link_state` for moved UAVs);
- per hop the link-adaptation rule: the highest MCS whose measured BLER at the hop's SNR is <= target
  (calibration/bler.py); a hop where even the most robust MCS misses the target delivers nothing;
- per task the link-adaptation prediction (controllers/link_adaptation.py): air time bits / (Rs x SE) per hop,
  store and forward, propagation, encode/decode time from the mode table; Mode 1's budget by the same
  highest-SCC rule, its PSNR from the task image's own rate-quality curve (codecs/profile.py; each task's
  image drawn from a pool of held-out images); Modes 3_x their measured bits and the image's own PSNR;
  analog modes (deep JSCC) ratio x 3 x P channel uses per hop, their PSNR-vs-SNR curve at the route's
  amplify-and-forward SNR;
- queues: one transmitter per node, first come first served (a hop starts when its transmitter is free).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sagin_hil.codecs.modes import MODES, RateQualityTable, load_mode_table
from sagin_hil.controllers.scc import scc_weights
from sagin_hil.controllers.tasks import FtpModel3
from sagin_hil.phy.channel import link_budget as lb
from sagin_hil.phy.channel.geometry import SPEED_OF_LIGHT_M_S, enu_basis, enu_to_ecef
from sagin_hil.phy.mcs import MCS_TABLE

__all__ = ["LinkTables", "link_tables", "Predictor", "SaginWorld", "DEFAULT_MODES", "DEFAULT_IMAGE_PIXELS",
           "candidate_routes_at", "MODE1_READINGS", "PAPER_IMAGE_PIXELS", "world_knobs"]

DEFAULT_MODES = ("mode1", "mode3_1", "mode3_2", "mode3_3")  # [P000]'s digital modes with measured rows
DEFAULT_IMAGE_PIXELS = 512 * 512  # as link adaptation plans a task whose image shape is unknown
# [P000]'s Mode 1 two ways: JPEG 2000 at the rate the controller sets, or the whole image (heavy, not scalable)
MODE1_READINGS = ("mode1", "mode1-lossless")
PAPER_IMAGE_PIXELS = round(3.5e6 * 8 / 24)  # [P000] Sec. V: original images of 3.5 MB (24-bit colour)
SNR_FLOOR_DB = -50.0  # a link below the horizon (-inf dB) is shown to agents at this value
CANDIDATE_UAVS = 2  # controllers/world.py: the UAVs nearest each user a task may go through


def _interp_rows(x: np.ndarray, grid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """np.interp of each x[...] on its own row rows[..., :] over the shared increasing `grid` (clamped at the
    ends, as np.interp)."""
    grid = np.asarray(grid, float)
    j = np.clip(np.searchsorted(grid, x), 1, len(grid) - 1)
    x0, x1 = grid[j - 1], grid[j]
    t = np.clip((x - x0) / (x1 - x0), 0.0, 1.0)
    y0 = np.take_along_axis(rows, (j - 1)[..., None], -1)[..., 0]
    y1 = np.take_along_axis(rows, j[..., None], -1)[..., 0]
    return y0 + t * (y1 - y0)


class LinkTables:
    """Link budgets of one scenario on a time grid t_k = k step_s, k = 0..ceil(horizon_s / step_s).

    sa_*: LEO -> UAV [T, K, N] with the UAVs at their home positions; isl_*: LEO -> LEO [T, K, K]; the budgets
    of UAVs elsewhere come from `space_air` and `air_ground`.
    """

    def __init__(self, scenario, horizon_s: float, step_s: float = 1.0):
        if not (math.isfinite(horizon_s) and horizon_s > 0):
            raise ValueError(f"horizon_s = {horizon_s!r} must be a positive number of seconds")
        if not step_s > 0:
            raise ValueError(f"step_s = {step_s!r} must be > 0 seconds")
        sc = self.scenario = scenario
        self.sats, self.uavs, self.users = sc.satellites, sc.uavs, sc.users
        for key, names in (("satellites", self.sats), ("uavs", self.uavs), ("users", self.users)):
            if not names:
                raise ValueError(f"the scenario has no {key}; the environment needs at least one (add [[{key}]])")
        K, N = len(self.sats), len(self.uavs)
        self.step_s = float(step_s)
        self.t_grid_s = np.arange(int(math.ceil(horizon_s / step_s)) + 1) * self.step_s
        T = len(self.t_grid_s)
        self.sa_snr_db = np.empty((T, K, N))
        self.sa_delay_s = np.empty((T, K, N))
        self.sa_elev_deg = np.empty((T, K, N))
        self.sa_visible = np.zeros((T, K, N), bool)
        self.isl_snr_db = np.full((T, K, K), -np.inf)
        self.isl_delay_s = np.zeros((T, K, K))
        self.isl_visible = np.zeros((T, K, K), bool)
        for i, t in enumerate(self.t_grid_s):
            for k, s in enumerate(self.sats):
                for n, u in enumerate(self.uavs):
                    st = sc.link_state(s, u, float(t))
                    self.sa_snr_db[i, k, n], self.sa_delay_s[i, k, n] = st.snr_db, st.delay_s
                    self.sa_elev_deg[i, k, n], self.sa_visible[i, k, n] = st.elevation_deg, st.visible
                for j, s2 in enumerate(self.sats):
                    if j != k:
                        st = sc.link_state(s, s2, float(t))
                        self.isl_snr_db[i, k, j], self.isl_delay_s[i, k, j] = st.snr_db, st.delay_s
                        self.isl_visible[i, k, j] = st.visible
        c = sc.config
        # what space_air needs: satellite positions (ECI) and the Earth's angle on the grid, the UAV frame
        self.sat_eci_m = np.array([[sc.state_eci(s, float(t))[0] for s in self.sats] for t in self.t_grid_s])
        self.theta_rad = np.array([sc.earth_angle_rad(float(t)) for t in self.t_grid_s])
        self._enu_basis = enu_basis(c.reference_lat_deg, c.reference_lon_deg)
        self._enu_origin = enu_to_ecef(c.reference_lat_deg, c.reference_lon_deg, np.zeros(3))
        sa = c.space_air
        scfg = {s.name: s for s in c.satellites}
        sa_noise_dbw = (sa.noise_dbm - 30.0 if sa.noise_dbm is not None
                        else lb.thermal_noise_dbw(sa.bandwidth_hz, sa.noise_temperature_k))
        # SNR = P + G_tx + G_rx - excess - noise - FSPL(d): all but the FSPL per satellite
        self._sa_const_db = np.array([lb.linear_to_db(scfg[s].tx_power_w) + scfg[s].antenna_gain_db
                                      + sa.rx_antenna_gain_db - sa.excess_loss_db - sa_noise_dbw for s in self.sats])
        self._sa_fspl_k = 4.0 * math.pi * sa.carrier_hz / SPEED_OF_LIGHT_M_S
        self.min_elevation_deg = float(c.min_elevation_deg)
        self.sa_bandwidth_hz = float(c.space_air.bandwidth_hz)
        self.isl_bandwidth_hz = float(c.isl.bandwidth_hz)
        self.ag_bandwidth_hz = float(c.air_ground.bandwidth_hz)
        self.uav_home_m = np.array([sc.position_enu(u, 0.0) for u in self.uavs], float)
        self.user_m = np.array([sc.position_enu(u, 0.0) for u in self.users], float)
        ucfg = {u.name: u for u in c.uavs}
        self.alt_min_m = np.array([ucfg[u].altitude_min_m for u in self.uavs], float)
        self.alt_max_m = np.array([ucfg[u].altitude_max_m for u in self.uavs], float)
        self.v_max_mps = np.array([ucfg[u].max_speed_mps for u in self.uavs], float)
        bad = [u for u, lo, hi in zip(self.uavs, self.alt_min_m, self.alt_max_m) if lo > hi]
        if bad:
            raise ValueError(f"uavs {bad}: altitude_min_m > altitude_max_m; swap the limits")
        # the air-ground budget of Scenario.link_state, as arrays
        ag = c.air_ground
        self._beta0_db = ag.reference_gain_db if ag.reference_gain_db is not None else \
            -lb.free_space_path_loss_db(1.0, ag.carrier_hz)
        mu = math.inf if math.isinf(ag.k_factor_db) else lb.db_to_linear(ag.k_factor_db)
        self._w_los = 1.0 if math.isinf(mu) else mu / (mu + 1.0)
        self._kappa = (ag.kappa_los, ag.kappa_nlos)
        self._uav_p_w = np.array([ucfg[u].tx_power_w for u in self.uavs], float)
        self._uav_gain_db = np.array([ucfg[u].antenna_gain_db for u in self.uavs], float)
        self._ag_loss_db = ag.rx_antenna_gain_db * -1.0 + ag.excess_loss_db
        noise_dbw = (ag.noise_dbm - 30.0 if ag.noise_dbm is not None
                     else lb.thermal_noise_dbw(ag.bandwidth_hz, ag.noise_temperature_k))
        self._noise_w = lb.db_to_linear(noise_dbw)
        self._interference = bool(ag.interference)
        self.buildings = sc.buildings  # None: every air-ground link is LoS (Eq. 5 as written)
        # area the UAVs may fly in: users and homes with a 500 m margin
        pts = np.vstack([self.uav_home_m[:, :2], self.user_m[:, :2]])
        self.area_lo_m, self.area_hi_m = pts.min(0) - 500.0, pts.max(0) + 500.0

    def index(self, t_s: np.ndarray | float) -> np.ndarray:
        """Nearest grid index of time(s) t_s (clamped to the grid)."""
        return np.clip(np.rint(np.asarray(t_s, float) / self.step_s).astype(np.intp), 0, len(self.t_grid_s) - 1)

    def space_air(self, i_t: int, uav_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """SNR (dB), delay (s), elevation (deg) and visibility of every LEO -> UAV link, [..., K, N], at grid
        index i_t for UAV positions [..., N, 3] (Scenario.link_state's space-air budget)."""
        ecef = self._enu_origin + uav_m @ self._enu_basis
        c, s = math.cos(self.theta_rad[i_t]), math.sin(self.theta_rad[i_t])
        eci = np.stack([c * ecef[..., 0] - s * ecef[..., 1], s * ecef[..., 0] + c * ecef[..., 1], ecef[..., 2]], -1)
        los = self.sat_eci_m[i_t][:, None, :] - eci[..., None, :, :]  # [..., K, N, 3]
        d = np.sqrt(np.einsum("...i,...i->...", los, los))
        up = eci / np.linalg.norm(eci, axis=-1, keepdims=True)
        sin_el = np.einsum("...kni,...ni->...kn", los, up) / d
        elev = np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))
        snr = self._sa_const_db[:, None] - 20.0 * np.log10(self._sa_fspl_k * d)
        snr = np.where(elev < 0, -np.inf, snr)  # below the horizon the Earth blocks it
        return snr, d / SPEED_OF_LIGHT_M_S, elev, elev >= self.min_elevation_deg

    def air_ground_los(self, uav_m: np.ndarray) -> np.ndarray:
        """LoS class of every UAV -> user link, [..., N, M] bool, for UAV positions [..., N, 3]."""
        shape = (*uav_m.shape[:-1], len(self.user_m))
        if self.buildings is None:
            return np.ones(shape, bool)
        return self.buildings.los(uav_m[..., :, None, :], self.user_m)

    def air_ground(self, uav_m: np.ndarray, los: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """SNR (dB) and delay (s) of every UAV -> user link, [..., N, M], for UAV positions [..., N, 3]
        (Scenario.link_state's air-ground budget, buildings included; los: their air_ground_los, if known)."""
        d = np.linalg.norm(uav_m[..., :, None, :] - self.user_m[None, :, :], axis=-1)
        kl, kn = self._kappa
        g_lin = 10 ** (self._beta0_db / 10) * (self._w_los * d ** -kl + (1.0 - self._w_los) * d ** -kn)
        if self.buildings is not None:
            eta_los, eta_nlos = self.buildings.excess_loss_db
            g_nlos = 10 ** ((self._beta0_db - eta_nlos) / 10) * d ** -kn
            los = self.air_ground_los(uav_m) if los is None else los
            g_lin = np.where(los, g_lin * 10 ** (-eta_los / 10), g_nlos)
        # received power of each UAV's own signal (tx gain in the path loss, as link_state has it)
        rx_w = (self._uav_p_w[:, None] * g_lin * 10 ** ((self._uav_gain_db[:, None] - self._ag_loss_db) / 10))
        if self._interference:  # every other UAV transmits at its power toward the user (Eq. 6)
            i_each = self._uav_p_w[:, None] * g_lin * 10 ** (self._uav_gain_db[:, None] / 10)
            interf = i_each.sum(-2, keepdims=True) - i_each
        else:
            interf = 0.0
        return 10 * np.log10(rx_w / (self._noise_w + interf)), d / SPEED_OF_LIGHT_M_S


_CACHE: dict[tuple[str, float, float], LinkTables] = {}


def link_tables(scenario, horizon_s: float, step_s: float = 1.0) -> LinkTables:
    """LinkTables of `scenario`, built once per (scenario content, horizon, step) and kept in this process."""
    key = (json.dumps(scenario.to_dict(), sort_keys=True, default=str), float(horizon_s), float(step_s))
    if key not in _CACHE:
        _CACHE[key] = LinkTables(scenario, horizon_s, step_s)
    return _CACHE[key]


def candidate_routes_at(tables: LinkTables, i_t: int, source: int, user: int,
                        uav_m: np.ndarray | None = None) -> list[tuple[int, ...]]:
    """controllers/world.py's candidate_routes on the tables, as node-index tuples (LEO [, LEO], UAV, user).

    Same order: the CANDIDATE_UAVS UAVs nearest the user (stable sort), per UAV the satellites that see it by
    falling elevation (the highest one when none does), direct from the source or over one visible ISL."""
    if uav_m is None:
        uav_m, sa_elev, sa_vis = tables.uav_home_m, tables.sa_elev_deg[i_t], tables.sa_visible[i_t]
    else:
        _, _, sa_elev, sa_vis = tables.space_air(i_t, np.asarray(uav_m, float))
    d = np.linalg.norm(uav_m - tables.user_m[user], axis=-1)
    uavs = list(np.argsort(d, kind="stable")[:CANDIDATE_UAVS])
    routes: list[tuple[int, ...]] = []
    for n in uavs:
        sats = list(np.argsort(-sa_elev[:, n], kind="stable"))
        seen = [k for k in sats if sa_vis[k, n]] or sats[:1]
        for k in seen:
            if k == source:
                routes.append((k, n, user))
            elif tables.isl_visible[i_t, source, k]:
                routes.append((source, k, n, user))
    if not routes:
        n = uavs[0]
        k = int(np.argmax(sa_elev[:, n]))
        routes.append((source, n, user) if k == source else (source, k, n, user))
    return routes


def _check_uav_offset_m(uav_offset_m: float) -> float:
    if not 0 <= uav_offset_m < 1e5:
        raise ValueError(f"uav_offset_m = {uav_offset_m!r} must be >= 0 metres (and below 100 km), e.g. 1500")
    return float(uav_offset_m)


def world_knobs(mode1: str = "mode1", n_pixels: int | None = None, uav_offset_m: float = 0.0) -> dict[str, Any]:
    """SaginWorld arguments of a world whose Mode 1 is `mode1` (MODE1_READINGS), whose images have n_pixels
    (default DEFAULT_IMAGE_PIXELS) and whose UAVs start uav_offset_m from their users' area: only what differs
    from the default world (empty for it). Checked here, before any world is built."""
    _check_uav_offset_m(uav_offset_m)
    if mode1 not in MODE1_READINGS:
        raise ValueError(f"mode1 = {mode1!r}; use one of {', '.join(MODE1_READINGS)}")
    if n_pixels is not None and n_pixels < 64 * 64:
        raise ValueError(f"n_pixels = {n_pixels}; give the pixels of a task image, e.g. {PAPER_IMAGE_PIXELS} "
                         "for the paper's 3.5 MB images")
    return {**({"modes": [mode1, *DEFAULT_MODES[1:]]} if mode1 != "mode1" else {}),
            **({"n_pixels": int(n_pixels)} if n_pixels is not None else {}),
            **({"uav_offset_m": float(uav_offset_m)} if uav_offset_m else {})}


class Predictor:
    """Per-task delay and quality exactly as controllers/link_adaptation.py predicts them (margin_db = 0).

    Parameters
    ----------
    modes: registered mode names ("mode1", "mode3_x", "jscc-1/12", ...); target_bler: BLER an MCS may have at the
    hop's SNR; bler_table: object with .bler(mcs, snr_db) and .mcs_names (default: the shipped table);
    mode_table: the measured mode table (default: the stored one); n_pixels: pixels of every image.
    """

    def __init__(self, modes=DEFAULT_MODES, target_bler: float = 0.1, bler_table: Any = None,
                 mode_table: dict[str, Any] | None = None, n_pixels: int = DEFAULT_IMAGE_PIXELS):
        from sagin_hil.calibration.bler import BlerTable

        if not 0 < target_bler < 1:
            raise ValueError(f"target_bler = {target_bler!r} must lie in (0, 1)")
        self.modes = tuple(modes)
        if not self.modes:
            raise ValueError("modes is empty; give at least one mode name, e.g. ('mode1',)")
        specs = [MODES.get(m) for m in self.modes]  # unknown names: the registry's did-you-mean error
        self.bler_table = bler_table if bler_table is not None else BlerTable.load()
        self.table = mode_table if mode_table is not None else load_mode_table()
        self.quality = RateQualityTable.coerce(self.table["j2k_rate_quality"])
        self.target_bler, self.n_pixels = float(target_bler), int(n_pixels)
        self.mcs = tuple(sorted(MCS_TABLE, key=lambda m: m.spectral_efficiency))  # as LinkAdaptation sorts
        self.se = np.array([m.spectral_efficiency for m in self.mcs])
        measured = set(getattr(self.bler_table, "mcs_names", None) or [m.name for m in self.mcs])
        self._measured = [i for i, m in enumerate(self.mcs) if m.name in measured]
        self._log_curves = None
        if isinstance(self.bler_table, BlerTable):
            from sagin_hil.calibration.bler import BLER_FLOOR

            self._snr_grid = np.asarray(self.bler_table.snr_db, float)
            self._log_curves = {i: self.bler_table._curve(self.mcs[i].name) for i in self._measured}
            self._log_floor = math.log10(BLER_FLOOR)
        self.threshold_db = self._thresholds_db()
        self._mcs_index = np.arange(len(self.mcs))
        # per mode: rate adaptive?, fixed bpp, psnr, compute time (encode, total)
        self.rate_adaptive = np.array([s.rate_adaptive for s in specs])
        self.fixed_bpp = np.array([0.0 if s.rate_adaptive else s.bits_per_pixel(self.table) for s in specs])
        self.fixed_psnr = np.array([np.nan if s.rate_adaptive or s.analog else s.psnr_db(self.table) for s in specs])
        # analog modes (deep JSCC): channel uses per hop, and PSNR against the end-to-end SNR
        self.analog = np.array([s.analog for s in specs])
        self.analog_symbols = np.array([s.symbols(self.n_pixels) if s.analog else 0 for s in specs], float)
        self._analog_curves = {i: (np.asarray(s.row(self.table)["snr_db"], float),
                                   np.asarray(s.row(self.table)["psnr_db"], float))
                               for i, s in enumerate(specs) if s.analog}
        self.fixed_total_s = np.array([0.0 if s.rate_adaptive else s.compute_time_s(self.table) for s in specs])
        self.fixed_enc_s = np.array([0.0 if s.rate_adaptive else s.compute_time_s(self.table, stages=("encode",))
                                     for s in specs])
        c = self.table["j2k_rate_quality"]
        self._j2k_logbpp = np.log(np.asarray(c["bpp"], float))
        self._j2k_total = np.asarray(c["encode_time_s"], float) + np.asarray(c["decode_time_s"], float)
        self._j2k_enc = np.asarray(c["encode_time_s"], float)

    # -- per hop -----------------------------------------------------------------------------------------
    def _meets_target(self, i: int, snr: np.ndarray) -> np.ndarray:
        """BLER of MCS i at snr <= target, as BlerTable.bler computes it (without re-reading the curve)."""
        if self._log_curves is not None:
            logb = np.interp(snr, self._snr_grid, self._log_curves[i])
            b = np.where(logb <= self._log_floor + 1e-12, 0.0, 10.0 ** logb)
        else:
            b = np.asarray(self.bler_table.bler(self.mcs[i].name, snr))
        return b <= self.target_bler

    def _thresholds_db(self) -> np.ndarray:
        """Per MCS the smallest SNR (a float) meeting the target (inf: never, or not measured). BLER falls with
        SNR, so "meets the target" is exactly "SNR >= threshold"; bisection to adjacent floats finds it."""
        thr = np.full(len(self.mcs), np.inf)
        for i in self._measured:
            lo, hi = -1e3, 1e3
            if self._meets_target(i, np.array(lo)):
                thr[i] = -np.inf
                continue
            if not self._meets_target(i, np.array(hi)):
                continue
            while True:
                mid = 0.5 * (lo + hi)
                if not lo < mid < hi:
                    break
                if self._meets_target(i, np.array(mid)):
                    hi = mid
                else:
                    lo = mid
            thr[i] = hi
        return thr

    def choose_mcs(self, snr_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into self.mcs, meets target) per SNR: the highest measured MCS with BLER <= target, else 0."""
        ok = np.asarray(snr_db, float)[..., None] >= self.threshold_db  # [..., n_mcs]
        best = np.where(ok, self._mcs_index, 0).max(-1)
        return best, ok.any(-1)

    def choose_mcs_by_table(self, snr_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """choose_mcs evaluating the BLER table at every SNR (the reference the thresholds are tested against)."""
        snr = np.asarray(snr_db, float)
        best = np.zeros(snr.shape, np.intp)
        ok_of = {}
        for i in self._measured:
            ok_of[i] = self._meets_target(i, snr)
            best = np.where(ok_of[i], i, best)
        meets = ok_of.get(0)
        if meets is None:  # the most robust MCS is not measured: a hop meets the target only with a measured one
            meets = np.zeros(snr.shape, bool)
        for i, ok in ok_of.items():
            meets = np.where(best == i, ok, meets)
        return best, meets

    # -- per task ----------------------------------------------------------------------------------------
    def _j2k_compute(self, bpp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.log(np.maximum(bpp, 1e-12))
        return np.interp(x, self._j2k_logbpp, self._j2k_total), np.interp(x, self._j2k_logbpp, self._j2k_enc)

    def _curves(self, curve_db: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
        """Per-task JPEG 2000 curves [*shape, G] on the table's bpp grid: `curve_db` (the images' own) or the mean."""
        if curve_db is None:
            return np.broadcast_to(self.quality.psnr_db, (*shape, len(self.quality.bpp)))
        curve = np.maximum.accumulate(np.asarray(curve_db, float), axis=-1)
        if curve.shape[-1] != len(self.quality.bpp):
            raise ValueError(f"curve_db has {curve.shape[-1]} points per task; the mode table's JPEG 2000 grid has "
                             f"{len(self.quality.bpp)} (bpp {self.quality.bpp.tolist()})")
        return np.broadcast_to(curve, (*shape, curve.shape[-1]))

    def _psnr_at(self, bpp: np.ndarray, curve: np.ndarray) -> np.ndarray:
        """RateQualityTable.psnr_at row by row: bpp [F, P] on curves [F, G] (linear in log bpp, clamped)."""
        xp = np.log(self.quality.bpp)
        x = np.log(np.maximum(bpp, 1e-12))
        i = np.clip(np.searchsorted(xp, x, side="right"), 1, len(xp) - 1)
        t = np.clip((x - xp[i - 1]) / (xp[i] - xp[i - 1]), 0.0, 1.0)
        f0, f1 = np.take_along_axis(curve, i - 1, axis=-1), np.take_along_axis(curve, i, axis=-1)
        return f0 + t * (f1 - f0)

    def _bpp_for(self, q_db: np.ndarray, curve: np.ndarray) -> np.ndarray:
        """RateQualityTable.bpp_for row by row: the smallest bpp reaching q_db [F] on curves [F, G]."""
        b = self.quality.bpp
        i = np.clip((curve < q_db[:, None]).sum(-1), 1, len(b) - 1)
        lo, hi = np.take_along_axis(curve, i[:, None] - 1, -1)[:, 0], np.take_along_axis(curve, i[:, None], -1)[:, 0]
        frac = np.where(hi == lo, 0.0, (q_db - lo) / np.where(hi == lo, 1.0, hi - lo))
        out = np.exp(np.log(b[i - 1]) + frac * (np.log(b[i]) - np.log(b[i - 1])))
        out = np.where(q_db <= curve[:, 0], b[0], out)
        return np.where(q_db > curve[:, -1], np.inf, out)

    def choose_bpp(self, d0_s, slope_s, deadline_s, q_min_db, xi_q, curve_db=None) -> np.ndarray:
        """LinkAdaptation._choose_bpp for arrays of tasks [F]: the Mode 1 budget of highest SCC on each task's
        curve (curve_db [F, G], the images' own; default: the mean curve)."""
        curve = self._curves(curve_db, np.shape(d0_s))
        lo_tab, hi_tab = float(self.quality.bpp[0]), float(self.quality.bpp[-1])
        bpp_deadline = (deadline_s - d0_s) / slope_s
        lo = np.maximum(self._bpp_for(q_min_db, curve), lo_tab)
        hi = np.minimum(bpp_deadline, hi_tab)
        out = np.clip(bpp_deadline, lo_tab, hi_tab)
        feas = lo <= hi
        if np.any(feas):
            lo_f, hi_f = lo[feas], hi[feas]
            geo = np.geomspace(lo_f, hi_f, 65, axis=-1)
            tab = np.broadcast_to(self.quality.bpp, (len(lo_f), len(self.quality.bpp)))
            tab = np.where((tab >= lo_f[:, None]) & (tab <= hi_f[:, None]), tab, np.nan)
            grid = np.sort(np.concatenate([geo, tab], axis=1), axis=1)  # NaN last, as np.unique orders
            xq = np.broadcast_to(np.asarray(xi_q, float), feas.shape)[feas][:, None]
            w = scc_weights(d0_s[feas][:, None] + slope_s[feas][:, None] * grid, self._psnr_at(grid, curve[feas]),
                            deadline_s[feas][:, None], q_min_db[feas][:, None], xq)
            w = np.where(np.isnan(grid), -1.0, w)
            out[feas] = np.take_along_axis(grid, np.argmax(w, axis=1)[:, None], axis=1)[:, 0]
        return out

    def analog_curves_of(self, profiles: list) -> np.ndarray | None:
        """[I, len(modes), S] each profile's own PSNR curve of each analog mode on the table's SNR grid of that
        mode (NaN where a profile has none, or measured it on another grid); None without analog modes."""
        if not self._analog_curves:
            return None
        S = max(len(grid) for grid, _ in self._analog_curves.values())
        out = np.full((len(profiles), len(self.modes), S), np.nan)
        for k, prof in enumerate(profiles):
            for i, (grid, _) in self._analog_curves.items():
                own = prof.analog_psnr_db.get(self.modes[i]) if prof is not None else None
                if own is not None and len(grid) == S and np.allclose(prof.snr_db, grid):
                    out[k, i] = own
        return out

    def predict(self, mode: np.ndarray, snr_db: np.ndarray, rate_hz: np.ndarray, prop_s: np.ndarray,
                hop_on: np.ndarray, deadline_s: np.ndarray, q_min_db: np.ndarray, xi_q=0.5,
                active: np.ndarray | None = None, curve_db: np.ndarray | None = None,
                mode_psnr_db: np.ndarray | None = None,
                analog_curve_db: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Prediction for tasks [...] over hops [..., H] (hop_on masks the hops a route has).

        mode: index into self.modes; snr_db, rate_hz (symbol rate), prop_s per hop. Returns bits_per_pixel,
        mcs (index into self.mcs) and air_s per hop, encode_s, decode_s, delay_s (no queueing), psnr_db,
        delivers (every hop's MCS meets the BLER target). Tasks outside `active` get no Mode 1 budget search.
        The images' own quality (Task.quality), where known: curve_db [..., G] their JPEG 2000 PSNR on the
        table's bpp grid, mode_psnr_db [..., len(modes)] each mode's PSNR, analog_curve_db [..., len(modes), S]
        each analog mode's PSNR on the table's SNR grid of that mode (NaN: use the table's mean)."""
        mode = np.asarray(mode, np.intp)
        hop_on = np.asarray(hop_on, bool)
        mcs, meets = self.choose_mcs(np.where(hop_on, snr_db, 0.0))
        se = self.se[mcs]
        per_bpp = np.where(hop_on, self.n_pixels / (np.where(hop_on, rate_hz, 1.0) * se), 0.0)
        slope = per_bpp.sum(-1)  # seconds of air time per bit per pixel
        prop = np.where(hop_on, prop_s, 0.0).sum(-1)
        delivers = np.all(meets | ~hop_on, axis=-1)
        ra = self.rate_adaptive[mode] if active is None else self.rate_adaptive[mode] & active
        bpp = self.fixed_bpp[mode].astype(float)
        total = self.fixed_total_s[mode].astype(float)
        enc = self.fixed_enc_s[mode].astype(float)
        psnr = self.fixed_psnr[mode].astype(float)
        if mode_psnr_db is not None:
            own = np.take_along_axis(np.asarray(mode_psnr_db, float), mode[..., None], -1)[..., 0]
            psnr = np.where(np.isnan(own), psnr, own)
        air = per_bpp * bpp[..., None]
        delay = total + prop + slope * bpp
        an = self.analog[mode]
        if np.any(an):  # amplify and forward: 1 + 1/SNR_e2e = prod_h (1 + 1/SNR_h) (phy.theory.relay_snr_db)
            inv = np.where(hop_on, 10.0 ** (-np.asarray(snr_db, float) / 10.0), 0.0)
            e2e_db = -10.0 * np.log10(np.prod(1.0 + inv, axis=-1) - 1.0)
            own = None
            if analog_curve_db is not None:  # each image's own curve, on the table's grid
                rows = np.broadcast_to(analog_curve_db, (*mode.shape, *np.shape(analog_curve_db)[-2:]))
                own = np.take_along_axis(rows, mode[..., None, None], axis=-2)[..., 0, :]
            for i, (grid, curve) in self._analog_curves.items():
                q = np.interp(e2e_db, grid, curve)
                if own is not None:
                    q = np.where(np.isnan(own[..., 0]), q, _interp_rows(e2e_db, grid, own))
                psnr = np.where(mode == i, q, psnr)
            n_sym = self.analog_symbols[mode]
            air = np.where(an[..., None], np.where(hop_on, n_sym[..., None] / np.where(hop_on, rate_hz, 1.0), 0.0), air)
            delay = np.where(an, total + prop + air.sum(-1), delay)
            delivers = delivers | an
        if np.any(ra):
            dl, qm = np.broadcast_to(deadline_s, ra.shape)[ra], np.broadcast_to(q_min_db, ra.shape)[ra]
            xq = np.broadcast_to(np.asarray(xi_q, float), ra.shape)[ra]
            curve = self._curves(curve_db, ra.shape)[ra]
            d0 = self._j2k_compute(np.ones(dl.shape))[0] + prop[ra]
            b = self.choose_bpp(d0, slope[ra], dl, qm, xq, curve)
            bpp[ra] = b
            total[ra], enc[ra] = self._j2k_compute(b)
            psnr[ra] = self._psnr_at(b[:, None], curve)[:, 0]
            air[ra] = per_bpp[ra] * b[:, None]
            delay[ra] = total[ra] + prop[ra] + slope[ra] * b
        return {"bits_per_pixel": bpp, "mcs": mcs, "air_s": air, "encode_s": enc, "decode_s": total - enc,
                "delay_s": delay, "psnr_db": psnr, "delivers": delivers}


@dataclass
class StepResult:
    """What one step did in each environment ([E] arrays)."""

    reward: np.ndarray
    dispatched: np.ndarray
    rejected: np.ndarray
    undelivered: np.ndarray
    expired: np.ndarray


class SaginWorld:
    """E independent copies of the SAGIN world advanced in lock step (all arrays lead with E).

    Parameters
    ----------
    n_envs: E; scenario: a Scenario (default: [P000] Sec. V); horizon_s: episode length; slot_s: decision
    slot; arrival_rate_hz: FTP Model 3 rate per LEO; window: tasks shown and decided per slot; modes,
    target_bler, n_pixels: the Predictor's; deadline_range_s, quality_range_db, weight_quality: the tasks';
    image_profiles: image name -> QualityProfile, the pool each task's image is drawn from uniformly (default:
    the held-out images' stored profiles, codecs/profile.py; {} plans every task as the table's mean image);
    uav_offset_m: each episode deploys every UAV this far from its home (its users' area) in a direction drawn
    from the episode's seed, inside the area ([P000] Sec. V deploys each UAV at random around its area; 0: at
    the home, the default).
    """

    def __init__(self, n_envs: int = 1, scenario=None, horizon_s: float = 200.0, slot_s: float = 1.0,
                 arrival_rate_hz: float = 0.1, window: int = 8, modes=DEFAULT_MODES, target_bler: float = 0.1,
                 n_pixels: int = DEFAULT_IMAGE_PIXELS, deadline_range_s=(2.0, 11.0),
                 quality_range_db=(10.0, 30.0), weight_quality: float = 0.5, rolloff: float = 0.25,
                 predictor: Predictor | None = None, image_profiles: dict | None = None,
                 uav_offset_m: float = 0.0):
        if int(n_envs) < 1:
            raise ValueError(f"n_envs = {n_envs!r} must be >= 1")
        if int(window) < 1:
            raise ValueError(f"window = {window!r} must be >= 1 task per slot")
        if not slot_s > 0:
            raise ValueError(f"slot_s = {slot_s!r} must be > 0 seconds")
        if not rolloff >= 0:
            raise ValueError(f"rolloff = {rolloff!r} must be >= 0")
        self.uav_offset_m = _check_uav_offset_m(uav_offset_m)
        if scenario is None:
            from sagin_hil.phy.channel.scenario import Scenario

            scenario = Scenario.default()
        self.E, self.W = int(n_envs), int(window)
        self.horizon_s, self.slot_s = float(horizon_s), float(slot_s)
        self.n_steps = int(math.ceil(self.horizon_s / self.slot_s))
        self.tables = link_tables(scenario, self.horizon_s, 1.0)
        self.K, self.N, self.M = len(self.tables.sats), len(self.tables.uavs), len(self.tables.users)
        self.traffic = FtpModel3(arrival_rate_hz)
        self.deadline_range_s, self.quality_range_db = tuple(deadline_range_s), tuple(quality_range_db)
        for name, (lo, hi) in (("deadline_range_s", self.deadline_range_s),
                               ("quality_range_db", self.quality_range_db)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} = {(lo, hi)} must satisfy 0 < lo <= hi")
        self.weight_quality = float(weight_quality)
        self.predictor = predictor or Predictor(modes, target_bler, n_pixels=n_pixels)
        self.modes = self.predictor.modes
        self._image_pool(image_profiles)
        self.rolloff = float(rolloff)
        rs = 1.0 / (1.0 + rolloff)
        self.rate_sa_hz, self.rate_isl_hz = self.tables.sa_bandwidth_hz * rs, self.tables.isl_bandwidth_hz * rs
        self.rate_ag_hz = self.tables.ag_bandwidth_hz * rs
        self._e = np.arange(self.E)
        self.reset([None] * self.E)

    def _image_pool(self, profiles: dict | None) -> None:
        """Per pool image its JPEG 2000 curve on the predictor's grid [I, G] and each mode's PSNR [I, modes]."""
        if profiles is None:
            from sagin_hil.codecs.profile import image_profiles

            try:
                profiles = image_profiles()
            except FileNotFoundError:
                profiles = {}
        grid = self.predictor.quality.bpp
        self.image_names = list(profiles) or ["(mean image)"]
        if not profiles:
            self.pool_curve_db = self.predictor.quality.psnr_db[None, :].copy()
            self.pool_mode_psnr_db = self.predictor.fixed_psnr[None, :].copy()
            self.pool_analog_curve_db = None
            self.pool_psnr_1bpp_db = self.predictor.quality.psnr_at(np.array([1.0]))
            self.pool_profiles = [None]
            return
        for name, prof in profiles.items():
            if not np.allclose(prof.bpp, grid):
                raise ValueError(f"image profile {name!r} is measured at bpp {list(prof.bpp)}; the mode table's "
                                 f"grid is {grid.tolist()}: rebuild both with `sagin-hil train modes`")
        self.pool_profiles = list(profiles.values())
        self.pool_curve_db = np.array([p.psnr_db for p in self.pool_profiles])
        self.pool_mode_psnr_db = np.array([[p.mode_psnr_db.get(m, np.nan) for m in self.modes]
                                           for p in self.pool_profiles])
        self.pool_analog_curve_db = self.predictor.analog_curves_of(self.pool_profiles)
        self.pool_psnr_1bpp_db = self.predictor._psnr_at(np.ones((len(self.pool_profiles), 1)), self.pool_curve_db)[:, 0]

    # -- episode -------------------------------------------------------------------------------------------
    def reset(self, seeds) -> None:
        """Start every environment afresh; seeds: one int (or None) per environment."""
        seeds = list(seeds)
        if len(seeds) != self.E:
            raise ValueError(f"reset needs {self.E} seeds (one per environment), got {len(seeds)}")
        # FTP Model 3 at every LEO (controllers/tasks.py), drawn for the whole episode; the users, D_max and
        # Q_min of TaskGenerator's ranges, as arrays rather than Task objects (a reset of 64 stays cheap)
        draws = []
        for s in seeds:
            rng = np.random.default_rng(s)
            times = [self.traffic.arrival_times_s(rng, horizon_s=self.horizon_s) for _ in range(self.K)]
            t = np.concatenate(times)
            k = np.repeat(np.arange(self.K), [len(x) for x in times])
            order = np.argsort(t, kind="stable")
            n = len(t)
            draws.append((t[order], k[order], rng.integers(self.M, size=n),
                          rng.uniform(*self.deadline_range_s, size=n), rng.uniform(*self.quality_range_db, size=n),
                          rng.integers(len(self.image_names), size=n)))
        G = max(1, max(len(d[0]) for d in draws))
        self.arrival_s = np.full((self.E, G), np.inf)
        self.source = np.zeros((self.E, G), np.intp)
        self.user = np.zeros((self.E, G), np.intp)
        self.deadline_s = np.ones((self.E, G))
        self.q_min_db = np.zeros((self.E, G))
        self.image = np.zeros((self.E, G), np.intp)  # index into the image pool
        for e, (t, k, m, d, q, img) in enumerate(draws):
            n = len(t)
            self.arrival_s[e, :n], self.source[e, :n], self.user[e, :n] = t, k, m
            self.deadline_s[e, :n], self.q_min_db[e, :n], self.image[e, :n] = d, q, img
        self.done = ~np.isfinite(self.arrival_s)  # padding counts as done
        # a dispatched task's outcome is known at dispatch; its SCC is paid in the slot in which it finishes
        self.finish_s = np.full(self.arrival_s.shape, np.inf)
        self.scc = np.zeros(self.arrival_s.shape)
        self.uav_m = np.broadcast_to(self.tables.uav_home_m, (self.E, self.N, 3)).copy()
        if self.uav_offset_m > 0:  # a stream of its own, so the tasks an episode draws do not change
            for e, s in enumerate(seeds):
                angle = np.random.default_rng(None if s is None else [int(s), 1]).uniform(0.0, 2 * np.pi, self.N)
                self.uav_m[e, :, :2] += self.uav_offset_m * np.stack([np.cos(angle), np.sin(angle)], -1)
            tb = self.tables
            self.uav_m[..., :2] = np.clip(self.uav_m[..., :2], tb.area_lo_m, tb.area_hi_m)
        self.busy_until_s = np.zeros((self.E, self.K + self.N))  # transmitters: LEOs then UAVs
        self.t_s = 0.0
        self.step_index = 0
        self._refresh()

    def _refresh(self) -> None:
        """Window of pending tasks and the air-ground budget at the current time."""
        G = self.arrival_s.shape[1]
        if G < self.W:  # fewer tasks than window slots: pad with done, never-arriving ones
            pad = ((0, 0), (0, self.W - G))
            self.arrival_s = np.pad(self.arrival_s, pad, constant_values=np.inf)
            self.deadline_s = np.pad(self.deadline_s, pad, constant_values=1.0)
            self.source, self.user, self.q_min_db, self.image = (
                np.pad(a, pad) for a in (self.source, self.user, self.q_min_db, self.image))
            self.done = np.pad(self.done, pad, constant_values=True)
            self.finish_s = np.pad(self.finish_s, pad, constant_values=np.inf)
            self.scc = np.pad(self.scc, pad)
            G = self.W
        pending = (self.arrival_s <= self.t_s) & ~self.done
        key = np.where(pending, np.arange(G), G)
        idx = np.sort(key, axis=1)[:, : self.W]
        self.win_valid = idx < G
        self.win = np.where(self.win_valid, idx, 0)
        self.n_pending = pending.sum(1)
        self.i_t = int(self.tables.index(self.t_s))
        self.ag_los = self.tables.air_ground_los(self.uav_m)  # [E, N, M]: the channel map (all LoS without buildings)
        self.ag_snr_db, self.ag_delay_s = self.tables.air_ground(self.uav_m, self.ag_los)
        self.sa_snr_db, self.sa_delay_s, self.sa_elev_deg, self.sa_visible = self.tables.space_air(self.i_t, self.uav_m)

    def _take(self, a: np.ndarray) -> np.ndarray:
        return a[self._e[:, None], self.win]

    # -- routes --------------------------------------------------------------------------------------------
    def route_ok(self, src, leo, uav, user) -> np.ndarray:
        """Whether LEO `src` [-> ISL -> `leo`] -> `uav` -> `user` is a candidate route (controllers/world.py's
        rule) now, per environment and task ([E, W] index arrays)."""
        tb, i = self.tables, self.i_t
        d = np.linalg.norm(self.uav_m[:, :, None, :] - tb.user_m[None, None, :, :], axis=-1)  # [E, N, M]
        # rank of each UAV among the users' nearest (stable: ties to the lower index, as sorted() does)
        rank = np.argsort(np.argsort(d, axis=1, kind="stable"), axis=1, kind="stable")
        e = self._e[:, None]
        near = rank[e, uav, user] < CANDIDATE_UAVS
        vis = self.sa_visible  # [E, K, N]
        top = np.argmax(self.sa_elev_deg, axis=1)  # [E, N] highest satellite above each UAV
        any_vis = vis.any(1)  # [E, N]
        served = np.where(any_vis[e, uav], vis[e, leo, uav], leo == top[e, uav])
        isl = tb.isl_visible[i][src, leo]
        ok = near & served & ((leo == src) | isl)
        # a task with no candidate at all falls back to the nearest UAV and its highest satellite
        nearest = np.argmin(d, axis=1)  # [E, M]
        return ok | (self._no_candidates(src, user, rank, vis, any_vis, top) & (uav == nearest[e, user])
                     & (leo == top[e, uav]))

    def _no_candidates(self, src, user, rank, vis, any_vis, top) -> np.ndarray:
        tb = self.tables
        isl = tb.isl_visible[self.i_t]  # [K, K]
        ks = np.arange(self.K)
        can_serve = np.where(any_vis[:, None, :], vis, ks[None, :, None] == top[:, None, :])  # [E, K, N]
        hand = (ks[:, None] == ks[None, :]) | isl  # [src, leo]: directly or over a visible ISL
        reach_uav = (can_serve[:, None, :, :] & hand[None, :, :, None]).any(2)  # [E, src, N]
        e = self._e[:, None]
        near = rank[e, :, user] < CANDIDATE_UAVS  # [E, W, N]
        return ~np.any(near & reach_uav[e, src], axis=-1)

    # -- step ----------------------------------------------------------------------------------------------
    def step(self, uav_leo, user_uav, isl, mode, waypoint) -> StepResult:
        """Carry out one slot's decisions in every environment.

        uav_leo [E, N]: the LEO serving each UAV (15a); user_uav [E, M]: the UAV serving each user (15b);
        isl [E, K]: the LEO each source hands its tasks to over one ISL (itself: none; 15c); mode [E, W]: the
        mode of each window task; waypoint [E, N, 3]: UAV moves in units of v_max x slot (norm clipped to 1).
        A window task whose implied route is not a candidate waits for a later slot (counted `rejected`).
        """
        tb, pr = self.tables, self.predictor
        e = self._e[:, None]
        uav_leo, user_uav = np.asarray(uav_leo, np.intp), np.asarray(user_uav, np.intp)
        isl, mode = np.asarray(isl, np.intp), np.asarray(mode, np.intp)
        for name, a, hi, shape in (("uav_leo", uav_leo, self.K, (self.E, self.N)),
                                   ("user_uav", user_uav, self.N, (self.E, self.M)),
                                   ("isl", isl, self.K, (self.E, self.K)),
                                   ("mode", mode, len(self.modes), (self.E, self.W))):
            if a.shape != shape or a.min() < 0 or a.max() >= hi:
                raise ValueError(f"action {name} must be integers in [0, {hi}) of shape {shape}; got shape "
                                 f"{a.shape}, range [{a.min()}, {a.max()}]")
        src, usr = self._take(self.source), self._take(self.user)
        uav = user_uav[e, usr]
        leo = uav_leo[e, uav]
        via_isl = leo != src
        ok = self.win_valid & self.route_ok(src, leo, uav, usr) & (~via_isl | (isl[e, src] == leo))
        i = self.i_t
        snr = np.stack([tb.isl_snr_db[i][src, leo], self.sa_snr_db[e, leo, uav], self.ag_snr_db[e, uav, usr]], -1)
        prop = np.stack([tb.isl_delay_s[i][src, leo], self.sa_delay_s[e, leo, uav], self.ag_delay_s[e, uav, usr]], -1)
        rate = np.broadcast_to(np.array([self.rate_isl_hz, self.rate_sa_hz, self.rate_ag_hz]), snr.shape)
        hop_on = np.stack([via_isl, np.ones_like(ok), np.ones_like(ok)], -1)
        dl, qm = self._take(self.deadline_s), self._take(self.q_min_db)
        img = self._take(self.image)
        pred = pr.predict(mode, snr, rate, prop, hop_on, dl, qm, self.weight_quality, active=ok,
                          curve_db=self.pool_curve_db[img], mode_psnr_db=self.pool_mode_psnr_db[img],
                          analog_curve_db=None if self.pool_analog_curve_db is None else self.pool_analog_curve_db[img])
        # store and forward through FCFS transmitters, window order = arrival order
        tx = np.stack([src, leo, self.K + uav], -1)
        air, enc, dec = pred["air_s"], pred["encode_s"], pred["decode_s"]
        finish = np.full(ok.shape, np.nan)
        for j in range(self.W):
            go = ok[:, j]
            ready = self.t_s + enc[:, j]
            for h in range(3):
                on = go & hop_on[:, j, h]
                busy = self.busy_until_s[self._e, tx[:, j, h]]
                end = np.maximum(ready, busy) + air[:, j, h]
                self.busy_until_s[self._e, tx[:, j, h]] = np.where(on, end, busy)
                ready = np.where(on, end + prop[:, j, h], ready)
            finish[:, j] = np.where(go, ready + dec[:, j], np.nan)
        delay = finish - self._take(self.arrival_s)
        psnr = np.where(pred["delivers"], pred["psnr_db"], np.nan)
        w = scc_weights(np.where(ok, delay, np.nan), psnr, dl, qm, self.weight_quality)
        self._last_valid = self.win_valid.copy()
        self.last = {"ok": ok, "delay_s": delay, "psnr_db": psnr, "scc": w, "pred": pred, "task": self.win.copy()}
        ei, ji = np.nonzero(ok)  # only dispatched slots are written (empty slots alias task 0)
        gi = self.win[ei, ji]
        self.done[ei, gi] = True
        self.finish_s[ei, gi] = finish[ei, ji]
        self.scc[ei, gi] = w[ei, ji]
        self._move(np.asarray(waypoint, float))
        self.t_s += self.slot_s
        self.step_index += 1
        # tasks that can no longer meet their deadline leave the queue with SCC 0
        expired = (self.arrival_s <= self.t_s) & ~self.done & (self.t_s - self.arrival_s >= self.deadline_s)
        self.done |= expired
        self._refresh()
        # Eq. 18: the SCC of the tasks finishing in this slot (at the horizon, of every task still in flight)
        due = self.finish_s < (np.inf if self.truncated else self.t_s)
        reward = np.where(due, self.scc, 0.0).sum(1)
        self.finish_s[due] = np.inf
        return StepResult(reward=reward, dispatched=ok.sum(1), rejected=(self._last_valid & ~ok).sum(1),
                          undelivered=(ok & ~pred["delivers"]).sum(1), expired=expired.sum(1))

    def _move(self, waypoint: np.ndarray) -> None:
        """UAVs fly toward their waypoint deltas within v_max (15f), altitude limits (15g) and the area."""
        if waypoint.shape != (self.E, self.N, 3) or not np.all(np.isfinite(waypoint)):
            raise ValueError(f"waypoint must be finite, shape {(self.E, self.N, 3)}; got {waypoint.shape}")
        tb = self.tables
        norm = np.linalg.norm(waypoint, axis=-1, keepdims=True)
        step = waypoint / np.maximum(norm, 1.0) * (tb.v_max_mps * self.slot_s)[None, :, None]
        pos = self.uav_m + step
        pos[..., 0] = np.clip(pos[..., 0], tb.area_lo_m[0], tb.area_hi_m[0])
        pos[..., 1] = np.clip(pos[..., 1], tb.area_lo_m[1], tb.area_hi_m[1])
        pos[..., 2] = np.clip(pos[..., 2], tb.alt_min_m, tb.alt_max_m)
        self.uav_m = pos

    def controller_state(self, e: int = 0):
        """Environment e now as a ControllerState, so the project's controllers can plan on the abstraction:
        the window tasks (task_id = window slot; deadline = what is left of D_max), their candidate routes,
        the predicted SNR, delay and bandwidth of every candidate link, positions, visibility, usable ISLs and
        the UAV limits; turn the Plan into an action with controllers.env.plan_to_action."""
        from sagin_hil.datatypes import ControllerState, Route, Task, link_id

        tb, i = self.tables, self.i_t
        tasks, routes = [], {}
        snr, prop, bw, elev, cmap = {}, {}, {}, {}, {}
        for j in np.nonzero(self.win_valid[e])[0]:
            g = self.win[e, j]
            k, m = int(self.source[e, g]), int(self.user[e, g])
            left_s = max(float(self.deadline_s[e, g] - (self.t_s - self.arrival_s[e, g])), 1e-6)
            img = int(self.image[e, g])
            tasks.append(Task(int(j), None, tb.sats[k], tb.users[m], deadline_s=left_s,
                              quality_min_db=float(self.q_min_db[e, g]), arrival_s=float(self.arrival_s[e, g]),
                              weight_quality=self.weight_quality, weight_delay=1.0 - self.weight_quality,
                              name=self.image_names[img], quality=self.pool_profiles[img]))
            cands = candidate_routes_at(tb, i, k, m, self.uav_m[e])
            routes[int(j)] = []
            for r in cands:
                *leos, n, mm = r
                names = [tb.sats[x] for x in leos] + [tb.uavs[n], tb.users[mm]]
                routes[int(j)].append(Route(tuple(names)))
                if len(leos) == 2:
                    h = link_id(names[0], names[1])
                    snr[h], prop[h], bw[h] = tb.isl_snr_db[i, leos[0], leos[1]], tb.isl_delay_s[i, leos[0], leos[1]], \
                        tb.isl_bandwidth_hz
                h = link_id(names[-3], names[-2])
                snr[h], prop[h], bw[h] = self.sa_snr_db[e, leos[-1], n], self.sa_delay_s[e, leos[-1], n], \
                    tb.sa_bandwidth_hz
                elev[h] = self.sa_elev_deg[e, leos[-1], n]
                h = link_id(names[-2], names[-1])
                snr[h], prop[h], bw[h] = self.ag_snr_db[e, n, mm], self.ag_delay_s[e, n, mm], tb.ag_bandwidth_hz
                if tb.buildings is not None:
                    cmap[h] = "los" if self.ag_los[e, n, mm] else "nlos"
        snr = {h: max(float(v), -50.0) for h, v in snr.items()}  # below the horizon: the LinkReport floor
        cfg = tb.scenario.config
        power = {s.name: float(s.tx_power_w) for s in cfg.satellites} | {u.name: float(u.tx_power_w) for u in cfg.uavs}
        return ControllerState(
            time_s=float(self.t_s), tasks=tasks, routes=routes, modes=list(self.modes),
            positions_m={**{u: tuple(self.uav_m[e, n]) for n, u in enumerate(tb.uavs)},
                         **{u: tuple(tb.user_m[m]) for m, u in enumerate(tb.users)}},
            visible=[(tb.sats[k], tb.uavs[n]) for k, n in zip(*np.nonzero(self.sa_visible[e]))],
            isl=[(tb.sats[a], tb.sats[b]) for a, b in zip(*np.nonzero(tb.isl_visible[i]))],
            predicted_snr_db=snr, propagation_delay_s={h: float(v) for h, v in prop.items()},
            bandwidth_hz={h: float(v) for h, v in bw.items()}, elevation_deg={h: float(v) for h, v in elev.items()},
            power_w=power, rolloff=self.rolloff,
            uav_limits={u: (float(tb.alt_min_m[n]), float(tb.alt_max_m[n]), float(tb.v_max_mps[n]))
                        for n, u in enumerate(tb.uavs)},
            channel_map=cmap, context={"slot_s": self.slot_s, "fidelity": "link-abstraction"})

    @property
    def truncated(self) -> bool:
        return self.step_index >= self.n_steps
