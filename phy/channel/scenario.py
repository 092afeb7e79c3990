"""The SAGIN scenario: LEO satellites, UAVs and ground users, and the link budget between them over time.

A scenario is a TOML file (validated by pydantic; see scenarios/default.toml and docs/channel.md):

    sc = load_scenario("scenarios/default.toml")       # or Scenario.default()
    sc.visibility_window("leo0", "uav0")                # (t_start_s, t_end_s) above the minimum elevation
    st = sc.link_state("leo0", "uav0", t_s=100.0)       # LinkState: distance, delay, Doppler, SNR, K, ...

Positions: satellites in ECI (circular orbits or TLEs), UAVs and users in metres east/north/up of the
reference point. The Earth turns under the satellites unless earth_rotation = false.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from scipy.special import j0

from sagin_hil.datatypes import link_id, parse_link_id
from sagin_hil.phy.channel import link_budget as lb
from sagin_hil.phy.channel.blockage import BuildingMap
from sagin_hil.phy.channel.geometry import (
    EARTH_ROTATION_RAD_S,
    SPEED_OF_LIGHT_M_S,
    earth_blocks_los,
    elevation_deg,
    enu_basis,
    enu_to_ecef,
)
from sagin_hil.phy.channel.orbits import CircularOrbit, TleOrbit, Trajectory, gmst_rad
from sagin_hil.phy.channel.scenario_config import SatelliteConfig, ScenarioConfig

__all__ = ["Scenario", "ScenarioError", "load_scenario", "ScenarioConfig"]


class ScenarioError(ValueError):
    """A scenario that cannot be built; the message names the file, the key, the value and what is allowed."""


def _format_validation(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "(top)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        lines.append(f"{source}: {key} = {shown[:80]}: {err['msg']}")
    return "\n".join(lines)


class Scenario:
    """A validated SAGIN scenario with node motion and a per-link budget.

    Parameters
    ----------
    config: a `ScenarioConfig` (build one with `Scenario.from_dict` or `load_scenario`).
    source: where it came from, named in error messages.
    """

    def __init__(self, config: ScenarioConfig, source: str = "<scenario>") -> None:
        self.config = config
        self.source = source
        c = config
        names = [s.name for s in c.satellites] + [u.name for u in c.uavs] + [u.name for u in c.users]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ScenarioError(f"{source}: node name(s) {dup} used more than once; names must be unique")
        self._theta0 = gmst_rad(c.epoch_jd) if c.epoch_jd is not None else 0.0
        self._orbits: dict[str, Any] = {}
        self._sat_cfg = {s.name: s for s in c.satellites}
        for i, s in enumerate(c.satellites):
            try:
                self._orbits[s.name] = self._build_orbit(s)
            except ValueError as exc:
                raise ScenarioError(f"{source}: satellites[{i}] ({s.name}): {exc}") from None
        self._uav_cfg = {u.name: u for u in c.uavs}
        self._trajectories: dict[str, Trajectory] = {}
        for i, u in enumerate(c.uavs):
            rows = [(0.0, *u.position_m)] if u.position_m is not None else list(u.waypoints or [])
            if not rows:
                raise ScenarioError(f"{source}: uavs[{i}].waypoints is empty; give at least one [t, x, y, z]")
            try:
                self._trajectories[u.name] = Trajectory(
                    tuple(r[0] for r in rows), tuple(tuple(r[1:]) for r in rows),
                    u.max_speed_mps, u.altitude_min_m, u.altitude_max_m,
                )
            except ValueError as exc:
                raise ScenarioError(f"{source}: uavs[{i}] ({u.name}): {exc}") from None
        self._user_cfg = {u.name: u for u in c.users}
        self._basis = enu_basis(c.reference_lat_deg, c.reference_lon_deg)
        self._origin = enu_to_ecef(c.reference_lat_deg, c.reference_lon_deg, np.zeros(3))
        self._user_ecef = {u.name: self._origin + np.asarray(u.position_m, float) @ self._basis for u in c.users}
        self._kinds = {**{n: "satellite" for n in self._sat_cfg}, **{n: "uav" for n in self._uav_cfg},
                       **{n: "user" for n in self._user_cfg}}
        self._allocated: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        self._calibrated = {link: self._load_calibration(link, path) for link, path in c.calibrated_links.items()}
        ag = c.air_ground
        self.buildings = BuildingMap(ag.blockage, ag.blockage_seed) if ag.blockage != "none" else None

    # ------------------------------------------------------------------------------------------ building
    def _load_calibration(self, link: str, path: str) -> dict[str, float]:
        """K, fading spread and oscillator offset of one calibrated link, read from its profile."""
        from sagin_hil.phy.channel.emulator import load_calibration_profile

        where = f"{self.source}: calibrated_links[{link!r}]"
        try:
            tx, rx = parse_link_id(link)
        except ValueError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        unknown = [n for n in (tx, rx) if n not in self._kinds]
        if unknown:
            raise ScenarioError(f"{where}: no node named {', '.join(unknown)}; nodes are {', '.join(self._kinds)}")
        try:
            ch = load_calibration_profile(Path(path).expanduser())["channel"]
            return {k: float(ch[k]) for k in ("k_factor_db", "max_doppler_hz", "cfo_ppm")}
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"{where}: {exc}") from None

    def calibration(self, tx: str, rx: str) -> dict[str, float] | None:
        """The calibrated link's measured {"k_factor_db", "max_doppler_hz", "cfo_ppm"}, or None (modelled)."""
        return self._calibrated.get(link_id(tx, rx))

    def _build_orbit(self, s: SatelliteConfig) -> CircularOrbit | TleOrbit:
        c = self.config
        if s.tle is not None:
            orbit = TleOrbit(s.tle[0], s.tle[1])
            if c.epoch_jd is None:  # the first TLE's epoch is t = 0
                self._theta0 = orbit.theta0_rad()
            return orbit
        alt_m = float(s.altitude_km) * 1e3  # type: ignore[arg-type]
        if s.zenith_time_s is not None:
            return CircularOrbit.through_zenith(
                alt_m, s.inclination_deg, c.reference_lat_deg, c.reference_lon_deg, s.zenith_time_s,
                earth_rotation=c.earth_rotation, theta0_rad=self._theta0, trail_m=s.trail_km * 1e3,
            )
        return CircularOrbit(alt_m, s.inclination_deg, s.raan_deg or 0.0, float(s.phase_deg))  # type: ignore

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Scenario:
        """Validate a scenario mapping (the TOML document); errors name source, key, value and the rule."""
        try:
            config = ScenarioConfig.model_validate(data)
        except ValidationError as exc:
            raise ScenarioError(_format_validation(exc, source)) from None
        return cls(config, source)

    @classmethod
    def default(cls) -> Scenario:
        """[P000] Sec. V (docs/references.md): five LEOs at 750 km passing over three UAV areas at 50 m, eight users."""
        return load_scenario(resources.files("sagin_hil.phy.channel") / "scenarios" / "default.toml")

    def to_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    # ------------------------------------------------------------------------------------------ nodes
    @property
    def satellites(self) -> list[str]:
        return [s.name for s in self.config.satellites]

    @property
    def uavs(self) -> list[str]:
        return [u.name for u in self.config.uavs]

    @property
    def users(self) -> list[str]:
        return [u.name for u in self.config.users]

    def node_kind(self, name: str) -> str:
        """"satellite", "uav" or "user"."""
        for kind, table in (("satellite", self._sat_cfg), ("uav", self._uav_cfg), ("user", self._user_cfg)):
            if name in table:
                return kind
        raise ScenarioError(
            f"{self.source}: no node named {name!r}; nodes are {self.satellites + self.uavs + self.users}"
        )

    def earth_angle_rad(self, t_s: float) -> float:
        return self._theta0 + (EARTH_ROTATION_RAD_S * t_s if self.config.earth_rotation else 0.0)

    def state_eci(self, name: str, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Inertial position (m) and velocity (m/s) of a node at scenario time t_s."""
        kind = self._kinds.get(name) or self.node_kind(name)
        if kind == "satellite":
            return self._orbits[name].state(t_s)
        if kind == "uav":
            enu, vel_enu = self._trajectories[name].state(t_s)
            x, y, z = self._origin + enu @ self._basis
            vx, vy, vz = vel_enu @ self._basis
        else:
            (x, y, z), vx, vy, vz = self._user_ecef[name], 0.0, 0.0, 0.0
        # rotate the Earth-fixed frame into the inertial one; a turning Earth adds omega x r
        theta = self.earth_angle_rad(t_s)
        c, s = math.cos(theta), math.sin(theta)
        px, py = c * x - s * y, s * x + c * y
        wx, wy = c * vx - s * vy, s * vx + c * vy
        if self.config.earth_rotation:
            wx, wy = wx - EARTH_ROTATION_RAD_S * py, wy + EARTH_ROTATION_RAD_S * px
        return np.array([px, py, z]), np.array([wx, wy, vz])

    def ground_track_enu(self, sat: str, t_s: float) -> np.ndarray:
        """The satellite's sub-satellite point at t_s in the local east/north plane (m): its position rotated
        into the Earth-fixed frame, projected to the Earth's surface along the radius (maps, not geometry)."""
        if self.node_kind(sat) != "satellite":
            raise ScenarioError(f"{sat!r} is a {self.node_kind(sat)}; ground tracks are of satellites")
        r = self._orbits[sat].state(t_s)[0]
        theta = self.earth_angle_rad(t_s)
        c, s = math.cos(theta), math.sin(theta)
        ecef = np.array([c * r[0] + s * r[1], -s * r[0] + c * r[1], r[2]])  # inverse of state_eci's rotation
        surface = ecef * (np.linalg.norm(self._origin) / np.linalg.norm(ecef))
        return ((surface - self._origin) @ self._basis.T)[:2]

    def position_enu(self, name: str, t_s: float) -> np.ndarray:
        """A UAV's or user's local position (m, east/north/up)."""
        if self.node_kind(name) == "uav":
            return self._trajectories[name].state(t_s)[0]
        if self.node_kind(name) == "user":
            return np.asarray(self._user_cfg[name].position_m, float)
        raise ScenarioError(f"{name!r} is a satellite; use state_eci for its position")

    def move_uav(self, name: str, target_m: tuple[float, float, float], t_s: float,
                 speed_mps: float | None = None) -> float:
        """Fly UAV `name` from where it is at t_s straight to target_m, then hover; returns the arrival time.

        The speed defaults to the UAV's max_speed_mps; the altitude and speed limits are checked (Eq. 15f-g).
        Waypoints after t_s are replaced. Raises ScenarioError naming the limit that is broken.
        """
        if self.node_kind(name) != "uav":
            raise ScenarioError(f"{name!r} is a {self.node_kind(name)}, not a UAV; only UAVs move")
        old = self._trajectories[name]
        speed = old.max_speed_mps if speed_mps is None else speed_mps
        if not speed > 0:
            raise ScenarioError(f"speed_mps = {speed_mps} must be > 0 m/s")
        here = old.state(t_s)[0]
        target = np.asarray(target_m, float)
        arrive = t_s + max(float(np.linalg.norm(target - here)) / speed, 1e-6)
        keep = [(t, p) for t, p in zip(old.times_s, old.positions_m) if t < t_s]
        rows = keep + [(t_s, tuple(here)), (arrive, tuple(target))]
        try:
            self._trajectories[name] = Trajectory(
                tuple(r[0] for r in rows), tuple(tuple(map(float, r[1])) for r in rows),
                old.max_speed_mps, old.altitude_min_m, old.altitude_max_m,
            )
        except ValueError as exc:
            raise ScenarioError(f"{self.source}: move_uav({name!r}): {exc}") from None
        return arrive

    def tx_power_w(self, name: str) -> float:
        """A satellite's or UAV's configured transmit power."""
        if self.node_kind(name) == "user":
            raise ScenarioError(f"{name!r} is a user; users do not transmit in this scenario")
        return float(self._node_cfg(name).tx_power_w)

    def set_link_allocation(self, tx: str, rx: str, power_w: float | None = None,
                            bandwidth_hz: float | None = None) -> None:
        """Transmit tx -> rx at `power_w` over `bandwidth_hz` instead of the configured values (None: the
        configured one); the noise is taken over the allocated bandwidth. Both None clears the override."""
        self.link_kind(tx, rx)  # validates the names
        for name, v in (("power_w", power_w), ("bandwidth_hz", bandwidth_hz)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ScenarioError(f"set_link_allocation({tx!r}, {rx!r}): {name} = {v!r} must be > 0")
        if power_w is None and bandwidth_hz is None:
            self._allocated.pop((tx, rx), None)
        else:
            self._allocated[(tx, rx)] = (power_w, bandwidth_hz)

    def distance_m(self, a: str, b: str, t_s: float) -> float:
        return float(np.linalg.norm(self.state_eci(a, t_s)[0] - self.state_eci(b, t_s)[0]))

    def elevation_deg(self, sat: str, ground: str, t_s: float) -> float:
        """Elevation of `sat` seen from `ground` (a UAV or user)."""
        return elevation_deg(self.state_eci(ground, t_s)[0], self.state_eci(sat, t_s)[0])

    # ------------------------------------------------------------------------------------------ visibility
    def visibility_windows(self, sat: str, node: str, t_from_s: float = 0.0, t_to_s: float | None = None,
                           step_s: float = 1.0) -> list[tuple[float, float]]:
        """All intervals in [t_from_s, t_to_s] with `sat` at or above min_elevation_deg from `node`.

        Found on a `step_s` grid, then refined by bisection to 1 microsecond; an interval cut by the
        search span is returned cut.
        """
        t_to_s = self.config.duration_s if t_to_s is None else t_to_s
        tau = self.config.min_elevation_deg
        above = lambda t: self.elevation_deg(sat, node, t) >= tau  # noqa: E731
        grid = np.arange(t_from_s, t_to_s + step_s, step_s)
        grid[-1] = min(grid[-1], t_to_s)
        flags = [above(t) for t in grid]

        def edge(lo: float, hi: float, rising: bool) -> float:
            while hi - lo > 1e-6:
                mid = 0.5 * (lo + hi)
                if above(mid) == rising:
                    hi = mid
                else:
                    lo = mid
            return 0.5 * (lo + hi)

        windows, start = [], (grid[0] if flags[0] else None)
        for i in range(1, len(grid)):
            if flags[i] and not flags[i - 1]:
                start = edge(grid[i - 1], grid[i], True)
            elif flags[i - 1] and not flags[i]:
                windows.append((float(start), edge(grid[i - 1], grid[i], False)))
                start = None
        if start is not None:
            windows.append((float(start), float(grid[-1])))
        return windows

    def visibility_window(self, sat: str, node: str, t_from_s: float = 0.0) -> tuple[float, float]:
        """The first window at or after t_from_s (within the scenario duration); (nan, nan) if none."""
        wins = self.visibility_windows(sat, node, t_from_s)
        return wins[0] if wins else (math.nan, math.nan)

    # ------------------------------------------------------------------------------------------ links
    def link_kind(self, tx: str, rx: str) -> str:
        kinds = {self.node_kind(tx), self.node_kind(rx)}
        if kinds == {"satellite", "uav"}:
            return "space-air"
        if kinds == {"uav", "user"}:
            return "air-ground"
        if kinds == {"satellite"}:
            return "isl"
        if kinds == {"uav"}:
            return "air-air"
        raise ScenarioError(
            f"no link model for {tx} ({self.node_kind(tx)}) -> {rx} ({self.node_kind(rx)}): satellites reach "
            "users only through a UAV relay; choose satellite->uav, uav->user, satellite->satellite or uav->uav"
        )

    def _range_and_rate(self, tx: str, rx: str, t_s: float) -> tuple[float, float]:
        (pa, va), (pb, vb) = self.state_eci(tx, t_s), self.state_eci(rx, t_s)
        los = pb - pa
        d = float(np.linalg.norm(los))
        return d, float(los @ (vb - va) / d)

    def _node_cfg(self, name: str) -> Any:
        return self._sat_cfg.get(name) or self._uav_cfg.get(name) or self._user_cfg[name]

    def _ag_gain_db(self, d_m: float, los: bool = True) -> float:
        """Eq. 5's mean gain; with buildings, a LoS link pays eta_LoS and a blocked one keeps only the NLoS
        term (K = 0) and pays eta_NLoS (phy/channel/blockage.py)."""
        ag = self.config.air_ground
        beta0 = ag.reference_gain_db
        if beta0 is None:
            beta0 = -lb.free_space_path_loss_db(1.0, ag.carrier_hz)
        if self.buildings is None:
            return lb.air_to_ground_gain_db(d_m, ag.k_factor_db, ag.kappa_los, ag.kappa_nlos, beta0)
        eta_los, eta_nlos = self.buildings.excess_loss_db
        if los:
            return lb.air_to_ground_gain_db(d_m, ag.k_factor_db, ag.kappa_los, ag.kappa_nlos, beta0) - eta_los
        return beta0 - 10.0 * ag.kappa_nlos * math.log10(d_m) - eta_nlos

    def air_ground_los(self, air: str, ground: str, t_s: float) -> bool:
        """Whether the ray between UAV `air` and user `ground` clears the scenario's buildings (True without any)."""
        if self.buildings is None:
            return True
        return bool(self.buildings.los(self.position_enu(air, t_s), self.position_enu(ground, t_s)))

    def link_state(self, tx: str, rx: str, t_s: float, interference: bool = True, los: bool | None = None) -> lb.LinkState:
        """The link budget of tx -> rx at scenario time t_s (see `LinkState`). interference=False leaves the
        other UAVs' power out of a UAV -> user link's SNR (for a channel that mixes their signals instead).
        los: the class to assume for an air-ground link (a channel map's guess); None = the buildings' truth."""
        kind = self.link_kind(tx, rx)
        c = self.config
        d, rr = self._range_and_rate(tx, rx, t_s)
        h = 0.05  # s; central difference of the exact range rate gives the Doppler rate
        rr_rate = (self._range_and_rate(tx, rx, t_s + h)[1] - self._range_and_rate(tx, rx, t_s - h)[1]) / (2 * h)
        txc = self._node_cfg(tx)
        power_w, alloc_bw = self._allocated.get((tx, rx), (None, None))
        p_dbw = lb.linear_to_db(txc.tx_power_w if power_w is None else power_w)
        interference_w = 0.0
        v_max = max((u.max_speed_mps for u in c.uavs), default=0.0)
        if kind == "isl":
            cfg = c.isl
            carrier, bw = cfg.carrier_hz, alloc_bw or cfg.bandwidth_hz
            noise_dbw = lb.thermal_noise_dbw(bw, cfg.noise_temperature_k)
            path_loss = lb.free_space_path_loss_db(d, carrier) - cfg.antenna_gain_db
            k_db, elev = math.inf, math.nan
            visible = not earth_blocks_los(self.state_eci(tx, t_s)[0], self.state_eci(rx, t_s)[0],
                                           cfg.grazing_height_m)
            f_spread = 0.0
        else:
            cfg = c.space_air if kind == "space-air" else c.air_ground
            carrier, bw = cfg.carrier_hz, alloc_bw or cfg.bandwidth_hz
            # noise_dbm is stated over the configured bandwidth: the same density over the allocated one
            noise_dbw = (cfg.noise_dbm - 30.0 + lb.linear_to_db(bw / cfg.bandwidth_hz) if cfg.noise_dbm is not None
                         else lb.thermal_noise_dbw(bw, cfg.noise_temperature_k))
            gains = txc.antenna_gain_db + cfg.rx_antenna_gain_db
            if kind == "air-ground":
                ground, air = (rx, tx) if self.node_kind(rx) == "user" else (tx, rx)
                is_los = self.air_ground_los(air, ground, t_s) if los is None else bool(los)
                path_loss = -self._ag_gain_db(d, is_los) - gains
                k_db = cfg.k_factor_db if is_los else -math.inf
                elev = elevation_deg(self.state_eci(ground, t_s)[0], self.state_eci(air, t_s)[0])
                visible = True
                if cfg.interference and interference and self.node_kind(rx) == "user":
                    for other in c.uavs:
                        if other.name != tx:
                            g_db = self._ag_gain_db(self.distance_m(other.name, rx, t_s),
                                                    self.air_ground_los(other.name, rx, t_s))
                            interference_w += other.tx_power_w * lb.db_to_linear(g_db + other.antenna_gain_db)
            else:
                path_loss = lb.free_space_path_loss_db(d, carrier) - gains
                k_db = cfg.k_factor_db if kind == "space-air" else math.inf
                if kind == "space-air":
                    sat, ground = (tx, rx) if self.node_kind(tx) == "satellite" else (rx, tx)
                    elev = self.elevation_deg(sat, ground, t_s)
                    visible = elev >= c.min_elevation_deg
                else:
                    elev, visible = math.nan, True
            f_spread = cfg.fading_doppler_hz if cfg.fading_doppler_hz is not None else carrier * v_max / SPEED_OF_LIGHT_M_S
            path_loss += cfg.excess_loss_db
        cal = self.calibration(tx, rx)
        if cal is not None:  # a recording's fit replaces the model's fading (K above 60 dB: no fading left)
            k_db = math.inf if cal["k_factor_db"] > 60 else cal["k_factor_db"]
            f_spread = cal["max_doppler_hz"]
        rx_dbw = p_dbw - path_loss
        n_plus_i = lb.db_to_linear(noise_dbw) + interference_w
        snr = rx_dbw - lb.linear_to_db(n_plus_i)
        if kind == "space-air" and elev < 0:  # below the horizon: the Earth blocks it
            rx_dbw, snr = -math.inf, -math.inf
        return lb.LinkState(
            tx=tx, rx=rx, time_s=float(t_s), kind=kind, distance_m=d, delay_s=d / SPEED_OF_LIGHT_M_S,
            doppler_hz=lb.doppler_hz(carrier, rr), doppler_rate_hz_per_s=lb.doppler_hz(carrier, rr_rate),
            path_loss_db=path_loss, rx_power_dbw=rx_dbw, noise_power_dbw=noise_dbw,
            interference_dbw=lb.linear_to_db(interference_w), snr_db=snr, k_factor_db=k_db,
            elevation_deg=elev, visible=bool(visible), max_doppler_hz=f_spread, carrier_hz=carrier,
            bandwidth_hz=bw, rate_bps=lb.shannon_rate_bps(bw, snr) if math.isfinite(snr) else 0.0,
            los=is_los if kind == "air-ground" else True,
        )

    def csi_delta(self, tx: str, rx: str, t_s: float, feedback_delay_s: float | None = None) -> float:
        """Eq. 2: delta = J0(2 pi f_D,max T), the correlation of the CSI the transmitter holds.

        f_D,max is the link's fading spread (`LinkState.max_doppler_hz`); T is `feedback_delay_s`, else the
        scenario's feedback_delay_s, else the link's propagation delay (the paper's transmission delay).
        """
        st = self.link_state(tx, rx, t_s)
        T = feedback_delay_s if feedback_delay_s is not None else self.config.feedback_delay_s
        T = st.delay_s if T is None else T
        if T < 0:
            raise ValueError(f"feedback_delay_s = {T} must be >= 0")
        return float(j0(2.0 * math.pi * st.max_doppler_hz * T))

    def isl_rate_bps(self, a: str, b: str, t_s: float) -> float:
        """Eq. 4 for satellites a -> b (0 when the Earth blocks the line of sight)."""
        st = self.link_state(a, b, t_s)
        return st.rate_bps if st.visible else 0.0


def load_scenario(path: str | Path | Any) -> Scenario:
    """Read and validate a scenario TOML file; ScenarioError names the file and the bad key."""
    name = str(path)
    try:
        text = Path(path).read_text() if not hasattr(path, "read_text") else path.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {name}: {exc.strerror}; check the path") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name}: not valid TOML: {exc}") from None
    return Scenario.from_dict(data, source=name)
