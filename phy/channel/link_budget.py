"""Link budget per hop: free-space loss, the air-to-ground model (Eq. 5-6), the ISL rate (Eq. 4), noise,
Doppler from velocities, and the `LinkState` a scenario reports for one link at one time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from sagin_hil.phy.channel.geometry import BOLTZMANN_J_K, SPEED_OF_LIGHT_M_S

__all__ = [
    "LinkState",
    "free_space_path_loss_db",
    "thermal_noise_dbw",
    "air_to_ground_gain_db",
    "isl_snr_db",
    "isl_rate_bps",
    "shannon_rate_bps",
    "doppler_hz",
    "db_to_linear",
    "linear_to_db",
]


def db_to_linear(x_db: float) -> float:
    return 10.0 ** (x_db / 10.0)


def linear_to_db(x: float) -> float:
    return 10.0 * math.log10(x) if x > 0 else -math.inf


def free_space_path_loss_db(distance_m: float, carrier_hz: float) -> float:
    """(4 pi d f / c)^2 in dB: the loss of Eq. 1 (|h|^2 = G lambda^2 / (4 pi d)^2) without the gain."""
    if distance_m <= 0 or carrier_hz <= 0:
        raise ValueError(f"distance_m = {distance_m} and carrier_hz = {carrier_hz} must be positive")
    return 20.0 * math.log10(4.0 * math.pi * distance_m * carrier_hz / SPEED_OF_LIGHT_M_S)


def thermal_noise_dbw(bandwidth_hz: float, temperature_k: float = 290.0) -> float:
    """kTB in dBW."""
    return linear_to_db(BOLTZMANN_J_K * temperature_k * bandwidth_hz)


def air_to_ground_gain_db(
    distance_m: float, k_factor_db: float, kappa_los: float = 2.0, kappa_nlos: float = 2.6, reference_gain_db: float = 0.0
) -> float:
    """Mean power gain E|h|^2 of Eq. 5 in dB.

    h = sqrt(mu/(mu+1)) a d^(-kappa_L/2) + sqrt(1/(mu+1)) CN(0,1) d^(-kappa_N/2), scaled by the reference
    gain beta_0 at 1 m (the paper's form has beta_0 = 1; set it to the free-space gain at 1 m or -60 dB).
    """
    mu = math.inf if math.isinf(k_factor_db) else db_to_linear(k_factor_db)
    w_los = 1.0 if math.isinf(mu) else mu / (mu + 1.0)
    gain = w_los * distance_m**-kappa_los + (1.0 - w_los) * distance_m**-kappa_nlos
    return reference_gain_db + linear_to_db(gain)


def isl_snr_db(
    power_w: float, antenna_gain_db: float, distance_m: float, carrier_hz: float, bandwidth_hz: float,
    noise_temperature_k: float = 354.81,
) -> float:
    """Eq. 4 SNR: P |eta_max|^2 / (k_B T B (4 pi d f / c)^2); antenna_gain_db is |eta_max|^2 in dB."""
    return (
        linear_to_db(power_w) + antenna_gain_db - free_space_path_loss_db(distance_m, carrier_hz)
        - thermal_noise_dbw(bandwidth_hz, noise_temperature_k)
    )


def shannon_rate_bps(bandwidth_hz: float, snr_db: float) -> float:
    """B log2(1 + SNR): Eq. 3, 4 and 6."""
    return bandwidth_hz * math.log2(1.0 + db_to_linear(snr_db))


def isl_rate_bps(
    power_w: float, antenna_gain_db: float, distance_m: float, carrier_hz: float, bandwidth_hz: float,
    noise_temperature_k: float = 354.81,
) -> float:
    """Eq. 4: the inter-satellite link rate in bit/s."""
    snr = isl_snr_db(power_w, antenna_gain_db, distance_m, carrier_hz, bandwidth_hz, noise_temperature_k)
    return shannon_rate_bps(bandwidth_hz, snr)


def doppler_hz(carrier_hz: float, range_rate_m_s: float) -> float:
    """Doppler shift: -f_c / c * d(range)/dt (approaching nodes shift up)."""
    return -carrier_hz * range_rate_m_s / SPEED_OF_LIGHT_M_S


@dataclass(frozen=True)
class LinkState:
    """One link (tx -> rx) at one time, as the scenario's link budget sees it.

    kind: "space-air" (Eq. 1), "air-ground" (Eq. 5-6), "isl" (Eq. 4) or "air-air" (free space).
    distance_m, delay_s: slant range and one-way propagation delay.
    doppler_hz, doppler_rate_hz_per_s: carrier Doppler shift and its time derivative from the velocities.
    path_loss_db: loss net of antenna gains (rx_power_dbw = tx power + ... - path_loss_db).
    noise_power_dbw: noise over the link bandwidth; interference_dbw: other UAVs' power (Eq. 6).
    snr_db: SINR over the bandwidth (-inf when not visible); k_factor_db: Rician K (inf = pure LoS).
    elevation_deg: elevation of the higher node seen from the lower one (nan for ISLs).
    visible: above the minimum elevation (space-air) / not blocked by the Earth (ISL).
    max_doppler_hz: Jakes spread of the small-scale fading; rate_bps: B log2(1 + SINR); los: False for an
    air-ground link a building blocks (scenario air_ground.blockage), else True.
    """

    tx: str
    rx: str
    time_s: float
    kind: str
    distance_m: float
    delay_s: float
    doppler_hz: float
    doppler_rate_hz_per_s: float
    path_loss_db: float
    rx_power_dbw: float
    noise_power_dbw: float
    interference_dbw: float
    snr_db: float
    k_factor_db: float
    elevation_deg: float
    visible: bool
    max_doppler_hz: float
    carrier_hz: float
    bandwidth_hz: float
    rate_bps: float
    los: bool = True

    def to_dict(self) -> dict:
        """Plain-JSON form (inf and nan kept as floats)."""
        d = asdict(self)
        d["visible"], d["los"] = bool(d["visible"]), bool(d["los"])
        return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in d.items()}
