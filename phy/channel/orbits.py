"""Motion of the nodes: circular LEO orbits, TLE orbits (sgp4), and UAV waypoint trajectories.

Every model answers `state(t_s) -> (position_m, velocity_m_s)` in its own frame: orbits in ECI, UAV
trajectories in the scenario's local east-north-up frame (metres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sagin_hil.phy.channel.geometry import EARTH_RADIUS_M, EARTH_ROTATION_RAD_S, MU_EARTH_M3_S2

__all__ = ["CircularOrbit", "TleOrbit", "Trajectory", "gmst_rad"]


@dataclass(frozen=True)
class CircularOrbit:
    """A circular Keplerian orbit.

    Parameters
    ----------
    altitude_m: height above the spherical Earth.
    inclination_deg: orbit inclination.
    raan_deg: right ascension of the ascending node (ECI).
    phase_deg: argument of latitude at t = 0 (angle from the ascending node along the orbit).
    """

    altitude_m: float
    inclination_deg: float = 53.0
    raan_deg: float = 0.0
    phase_deg: float = 0.0

    @property
    def radius_m(self) -> float:
        return EARTH_RADIUS_M + self.altitude_m

    @property
    def mean_motion_rad_s(self) -> float:
        return math.sqrt(MU_EARTH_M3_S2 / self.radius_m**3)

    @property
    def speed_m_s(self) -> float:
        return self.mean_motion_rad_s * self.radius_m

    @cached_property
    def _plane(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        # unit vectors of the orbital plane: p towards the ascending node, q 90 deg ahead along the orbit
        raan, inc = math.radians(self.raan_deg), math.radians(self.inclination_deg)
        p = (math.cos(raan), math.sin(raan), 0.0)
        q = (-math.sin(raan) * math.cos(inc), math.cos(raan) * math.cos(inc), math.sin(inc))
        return p, q

    def state(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """ECI position (m) and velocity (m/s) at time t_s."""
        n, r = self.mean_motion_rad_s, self.radius_m
        u = math.radians(self.phase_deg) + n * t_s
        (p, q), cu, su = self._plane, math.cos(u), math.sin(u)
        pos = np.array([r * (cu * p[i] + su * q[i]) for i in range(3)])
        vel = np.array([r * n * (-su * p[i] + cu * q[i]) for i in range(3)])
        return pos, vel

    @classmethod
    def through_zenith(
        cls,
        altitude_m: float,
        inclination_deg: float,
        lat_deg: float,
        lon_deg: float,
        t_zenith_s: float,
        earth_rotation: bool = True,
        theta0_rad: float = 0.0,
        trail_m: float = 0.0,
        descending: bool = False,
    ) -> CircularOrbit:
        """The orbit that passes straight over (lat_deg, lon_deg) at t_zenith_s.

        `trail_m` places the satellite that far behind along its track (a train of LEOs on one orbit);
        `theta0_rad` is the Earth rotation angle at t = 0.
        """
        inc = math.radians(inclination_deg)
        lat = math.radians(lat_deg)
        if abs(math.sin(lat)) > abs(math.sin(inc)) + 1e-12:
            raise ValueError(
                f"an orbit of inclination {inclination_deg} deg never passes over latitude {lat_deg} deg; "
                f"use inclination_deg >= {abs(lat_deg)}"
            )
        u = math.asin(np.clip(math.sin(lat) / math.sin(inc), -1.0, 1.0)) if inc != 0 else 0.0
        if descending:
            u = math.pi - u
        dlon = math.atan2(math.cos(inc) * math.sin(u), math.cos(u))
        theta = theta0_rad + (EARTH_ROTATION_RAD_S * t_zenith_s if earth_rotation else 0.0)
        raan = math.radians(lon_deg) + theta - dlon
        radius = EARTH_RADIUS_M + altitude_m
        n = math.sqrt(MU_EARTH_M3_S2 / radius**3)
        phase = u - n * t_zenith_s - trail_m / radius
        return cls(altitude_m, inclination_deg, math.degrees(raan) % 360.0, math.degrees(phase) % 360.0)


def gmst_rad(jd: float, fr: float = 0.0) -> float:
    """Greenwich mean sidereal angle (rad) at Julian date jd + fr (IAU 1982 linear form)."""
    days = (jd - 2451545.0) + fr
    return math.radians((280.46061837 + 360.98564736629 * days) % 360.0)


@dataclass(frozen=True)
class TleOrbit:
    """An orbit from a two-line element set, propagated by sgp4 (TEME frame, treated as inertial).

    Parameters
    ----------
    line1, line2: the TLE lines.
    start_offset_s: scenario time 0 is the TLE epoch plus this many seconds.
    """

    line1: str
    line2: str
    start_offset_s: float = 0.0
    _sat: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        from sgp4.api import Satrec

        try:
            sat = Satrec.twoline2rv(self.line1, self.line2)
        except Exception as exc:  # sgp4 raises ValueError with its own wording
            raise ValueError(f"invalid TLE ({exc}); give the two 69-character lines of a TLE") from None
        object.__setattr__(self, "_sat", sat)

    @property
    def epoch_jd(self) -> tuple[float, float]:
        return self._sat.jdsatepoch, self._sat.jdsatepochF  # type: ignore[attr-defined]

    def theta0_rad(self) -> float:
        """Earth rotation angle (GMST) at scenario time 0."""
        jd, fr = self.epoch_jd
        return gmst_rad(jd, fr + self.start_offset_s / 86400.0)

    def state(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        jd, fr = self.epoch_jd
        err, pos_km, vel_km_s = self._sat.sgp4(jd, fr + (self.start_offset_s + t_s) / 86400.0)  # type: ignore
        if err != 0:
            raise ValueError(f"sgp4 error code {err} at t = {t_s} s (the TLE has decayed or is invalid)")
        return np.array(pos_km) * 1e3, np.array(vel_km_s) * 1e3


@dataclass(frozen=True)
class Trajectory:
    """Piecewise-linear UAV trajectory in the local ENU frame, within speed and altitude limits.

    Parameters
    ----------
    times_s: increasing waypoint times (one waypoint = hovering).
    positions_m: (len(times_s), 3) east/north/up metres.
    max_speed_mps, altitude_min_m, altitude_max_m: limits checked at construction (Eq. 15f-g).
    """

    times_s: tuple[float, ...]
    positions_m: tuple[tuple[float, float, float], ...]
    max_speed_mps: float = 10.0
    altitude_min_m: float = 45.0
    altitude_max_m: float = 60.0

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, float)
        p = np.asarray(self.positions_m, float).reshape(-1, 3)
        if len(t) != len(p) or len(t) == 0:
            raise ValueError(f"a trajectory needs one time per waypoint; got {len(t)} times, {len(p)} waypoints")
        if np.any(np.diff(t) <= 0):
            raise ValueError(f"waypoint times {list(t)} must increase strictly")
        bad = np.flatnonzero((p[:, 2] < self.altitude_min_m - 1e-9) | (p[:, 2] > self.altitude_max_m + 1e-9))
        if bad.size:
            raise ValueError(
                f"waypoint {int(bad[0])} altitude {p[bad[0], 2]} m is outside "
                f"[{self.altitude_min_m}, {self.altitude_max_m}] m"
            )
        if len(t) > 1:
            speed = np.linalg.norm(np.diff(p, axis=0), axis=1) / np.diff(t)
            if np.any(speed > self.max_speed_mps * (1 + 1e-9)):
                i = int(np.argmax(speed))
                raise ValueError(
                    f"leg {i} -> {i + 1} needs {speed[i]:.3g} m/s, above max_speed_mps = {self.max_speed_mps}; "
                    "space the waypoints further apart in time"
                )

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.times_s, float), np.asarray(self.positions_m, float).reshape(-1, 3)

    def state(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """ENU position (m) and velocity (m/s); holds the first/last waypoint outside the time span."""
        t, p = self._arrays
        if len(t) == 1 or t_s <= t[0]:
            return p[0].copy(), np.zeros(3)
        if t_s >= t[-1]:
            return p[-1].copy(), np.zeros(3)
        i = int(np.searchsorted(t, t_s, side="right")) - 1
        frac = (t_s - t[i]) / (t[i + 1] - t[i])
        vel = (p[i + 1] - p[i]) / (t[i + 1] - t[i])
        return p[i] + frac * (p[i + 1] - p[i]), vel
