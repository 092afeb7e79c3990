"""Geometry on a spherical Earth: frames, elevation, slant range, and the LEO visibility arc (Eq. 7-8).

Frames: ECI (inertial, metres, z through the north pole) and ECEF (Earth-fixed). Ground and air nodes are
given in a local east-north-up (ENU) frame in metres around a scenario reference point (lat, lon) on the
sphere, as in the paper's (x, y, z) UAV positions; `enu_to_ecef` maps them onto the sphere.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EARTH_RADIUS_M",
    "MU_EARTH_M3_S2",
    "EARTH_ROTATION_RAD_S",
    "SPEED_OF_LIGHT_M_S",
    "BOLTZMANN_J_K",
    "enu_basis",
    "enu_to_ecef",
    "ecef_to_eci",
    "elevation_deg",
    "earth_blocks_los",
    "visibility_arc_m",
    "visibility_duration_s",
    "circular_speed_m_s",
]

EARTH_RADIUS_M = 6371.0e3  # d_E of Eq. 7 (mean radius)
MU_EARTH_M3_S2 = 3.986004418e14
EARTH_ROTATION_RAD_S = 7.2921159e-5
SPEED_OF_LIGHT_M_S = 299_792_458.0
BOLTZMANN_J_K = 1.380649e-23


def enu_basis(lat_deg: float, lon_deg: float) -> np.ndarray:
    """Rows: the east, north and up unit vectors (ECEF) at (lat_deg, lon_deg)."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    east = [-math.sin(lon), math.cos(lon), 0.0]
    north = [-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)]
    up = [math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)]
    return np.array([east, north, up])


def enu_to_ecef(lat_deg: float, lon_deg: float, enu_m: np.ndarray) -> np.ndarray:
    """ECEF position (m) of a point given in metres east/north/up of the reference point on the sphere.

    Input: enu_m, shape (..., 3). Output: shape (..., 3). The tangent-plane offset is exact for the
    few-kilometre areas of a SAGIN cell; "up" is measured from the reference point's tangent plane.
    """
    basis = enu_basis(lat_deg, lon_deg)
    origin = EARTH_RADIUS_M * basis[2]
    return origin + np.asarray(enu_m, dtype=float) @ basis


def ecef_to_eci(pos_ecef_m: np.ndarray, vel_ecef_m_s: np.ndarray, theta_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an Earth-fixed position/velocity into the inertial frame at Earth rotation angle theta_rad.

    The inertial velocity adds omega x r, the Earth's rotation carrying the point.
    """
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pos = rot @ np.asarray(pos_ecef_m, dtype=float)
    vel = rot @ np.asarray(vel_ecef_m_s, dtype=float)
    omega = np.array([0.0, 0.0, EARTH_ROTATION_RAD_S])
    return pos, vel + np.cross(omega, pos)


def elevation_deg(observer_m: np.ndarray, target_m: np.ndarray) -> float:
    """Elevation (deg) of `target_m` above the local horizontal of `observer_m` (both ECI or both ECEF)."""
    los = np.asarray(target_m, float) - np.asarray(observer_m, float)
    up = np.asarray(observer_m, float) / np.linalg.norm(observer_m)
    return math.degrees(math.asin(np.clip(los @ up / np.linalg.norm(los), -1.0, 1.0)))


def earth_blocks_los(a_m: np.ndarray, b_m: np.ndarray, grazing_height_m: float = 0.0) -> bool:
    """True if the segment a-b passes below `grazing_height_m` above the sphere (inter-satellite links)."""
    a, b = np.asarray(a_m, float), np.asarray(b_m, float)
    d = b - a
    s = float(np.clip(-(a @ d) / (d @ d), 0.0, 1.0))
    return bool(np.linalg.norm(a + s * d) < EARTH_RADIUS_M + grazing_height_m)


def visibility_arc_m(altitude_m: float, min_elevation_deg: float, earth_radius_m: float = EARTH_RADIUS_M) -> float:
    """Eq. 7: R_k = 2 (d_E + d_k) (arccos(d_E / (d_E + d_k) cos tau) - tau), the orbit arc above tau."""
    tau = math.radians(min_elevation_deg)
    r = earth_radius_m + altitude_m
    return 2.0 * r * (math.acos(earth_radius_m / r * math.cos(tau)) - tau)


def visibility_duration_s(
    altitude_m: float, min_elevation_deg: float, speed_m_s: float | None = None, earth_radius_m: float = EARTH_RADIUS_M
) -> float:
    """Eq. 8: T_k = R_k / v_k; v_k defaults to the circular orbital speed at that altitude."""
    v = circular_speed_m_s(altitude_m) if speed_m_s is None else speed_m_s
    return visibility_arc_m(altitude_m, min_elevation_deg, earth_radius_m) / v


def circular_speed_m_s(altitude_m: float) -> float:
    """Speed of a circular orbit at `altitude_m` (sqrt(mu / r))."""
    return math.sqrt(MU_EARTH_M3_S2 / (EARTH_RADIUS_M + altitude_m))
