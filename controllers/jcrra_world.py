"""The LEO Earth-observation world of [P002] for JCRRA: channel gains from the scenario's orbit (a TLE through
sgp4), the users' demands and requirements, drawn per seed.

The scenario is the project's one model (phy.channel.scenario): the EO ground terminals are its hovering
"uav" nodes (a terminal on a mast), fed by the satellite over the space-air link (40 MHz, satellite antenna
24 dBi, N0 -174 dBm/Hz); flowgraphs/leo-eo-002.toml holds it. Slot t of the window, sub-channel s (an equal
share B/S of the band) and user u get the SNR per watt

    g_ust = SNR_u(t) at the scenario's nominal power / P_nominal x S x |h_ust|^2

where SNR_u(t) is the link budget of the slot's start (slant range and elevation move with the orbit), S
converts the noise of the whole band to one sub-channel's, and |h|^2 is a unit-mean Rician power gain
(K of the space-air link) drawn per sub-channel and slot. A slot where the satellite is below the minimum
elevation has g = 0 (the user cannot be served then).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagin_hil.calibration.ssim_surface import SsimSurface
from sagin_hil.controllers.jcrra import JcrraProblem

__all__ = ["LeoEoSettings", "leo_eo_gains", "leo_eo_problem", "rician_power"]


@dataclass(frozen=True)
class LeoEoSettings:
    """One JCRRA setting. users: how many of the scenario's terminals (the first ones); subchannels: S;
    slots: T of slot_s seconds from window_start_s (scenario time); images: per-user demand range in 64 x 64
    tiles; ssim_min, delay_slots: per-user requirement ranges (drawn uniformly; delays rounded); ratios: the
    JSCC options; power_budget_dbw: P_max per slot."""

    users: int = 6
    subchannels: int = 4
    slots: int = 30
    slot_s: float = 10.0
    window_start_s: float = 150.0
    images: tuple[float, float] = (2e5, 6e5)
    ssim_min: tuple[float, float] = (0.82, 0.86)
    delay_slots: tuple[float, float] = (12, 20)
    ratios: tuple[float, ...] = (1 / 12, 1 / 6)
    power_budget_dbw: float = 17.0
    tile_px: int = 64


def rician_power(k_factor_db: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-mean |h|^2 of Rician fading with factor K (dB; inf = no fading)."""
    if np.isinf(k_factor_db):
        return np.ones(shape)
    k = 10 ** (k_factor_db / 10)
    los = np.sqrt(k / (k + 1))
    nlos = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * np.sqrt(1 / (2 * (k + 1)))
    return np.abs(los + nlos) ** 2


def leo_eo_gains(scenario, satellite: str, terminals: list[str], times_s: np.ndarray, subchannels: int,
                 rng: np.random.Generator) -> np.ndarray:
    """(U, S, T) SNR per watt on one sub-channel (see the module docstring)."""
    p_nominal = scenario.tx_power_w(satellite)
    k_db = scenario.config.space_air.k_factor_db
    snr = np.zeros((len(terminals), len(times_s)))
    for u, term in enumerate(terminals):
        for t, time_s in enumerate(times_s):
            st = scenario.link_state(satellite, term, float(time_s))
            snr[u, t] = 10 ** (st.snr_db / 10) / p_nominal * subchannels if st.visible else 0.0
    fading = rician_power(k_db, (len(terminals), subchannels, len(times_s)), rng)
    return snr[:, None, :] * fading


def leo_eo_problem(scenario, settings: LeoEoSettings, surface: SsimSurface, seed: int) -> JcrraProblem:
    """A JCRRA instance: the scenario's first satellite over its first `users` terminals, demands and
    requirements drawn from `seed` (the same seed gives the same instance)."""
    terminals = list(scenario.uavs)[: settings.users]
    if len(terminals) < settings.users:
        raise ValueError(f"the scenario has {len(scenario.uavs)} terminals ('uavs'); the setting asks for "
                         f"{settings.users}: add terminals or lower users")
    rng = np.random.default_rng([seed, 2002])
    times = settings.window_start_s + settings.slot_s * np.arange(settings.slots)
    gain = leo_eo_gains(scenario, scenario.satellites[0], terminals, times, settings.subchannels, rng)
    values = 3 * settings.tile_px**2
    images = np.round(rng.uniform(*settings.images, settings.users))
    delay = np.clip(np.round(rng.uniform(*settings.delay_slots, settings.users)), 1, settings.slots)
    bandwidth = scenario.config.space_air.bandwidth_hz / settings.subchannels
    return JcrraProblem(
        gain=gain, ratios=settings.ratios, source_values=images * values,
        ssim_min=rng.uniform(*settings.ssim_min, settings.users), delay_slots=delay.astype(int),
        symbols_per_slot=bandwidth * settings.slot_s, power_budget_w=10 ** (settings.power_budget_dbw / 10),
        surface=surface, values_per_image=values,
    )
