"""The scenario file's schema (pydantic): every key, its default, its unit and what is allowed.

See scenarios/default.toml for a complete file and docs/channel.md for the meaning of each key.
"""

from __future__ import annotations

import math
from typing import Optional, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ScenarioConfig", "SpaceAirConfig", "AirGroundConfig", "IslConfig", "SatelliteConfig", "UavConfig",
           "UserConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpaceAirConfig(_Model):
    carrier_hz: float = Field(25e9, gt=0, description="LEO -> UAV carrier (Ka band)")
    bandwidth_hz: float = Field(10e6, gt=0)
    noise_dbm: Optional[float] = Field(-130.0, description="noise power over the bandwidth; None = kTB")
    noise_temperature_k: float = Field(290.0, gt=0)
    rx_antenna_gain_db: float = 0.0
    k_factor_db: float = Field(math.inf, description="Rician K of the LEO hop; inf = pure LoS (Eq. 1)")
    fading_doppler_hz: Optional[float] = Field(None, ge=0, description="Jakes spread; None = f_c v_uav,max / c")
    excess_loss_db: float = Field(0.0, ge=0, description="losses beyond the model: rain fade, pointing, cables")


class AirGroundConfig(_Model):
    carrier_hz: float = Field(2e9, gt=0)
    bandwidth_hz: float = Field(10e6, gt=0)
    noise_dbm: Optional[float] = -130.0
    noise_temperature_k: float = Field(290.0, gt=0)
    rx_antenna_gain_db: float = 0.0
    k_factor_db: float = Field(10.0, description="Rician factor mu of Eq. 5 in dB")
    kappa_los: float = Field(2.0, gt=0, le=6)
    kappa_nlos: float = Field(2.6, gt=0, le=6)
    reference_gain_db: Optional[float] = Field(None, description="beta_0 at 1 m; None = free space at 1 m")
    interference: bool = Field(True, description="other UAVs' downlinks interfere (Eq. 6)")
    fading_doppler_hz: Optional[float] = Field(None, ge=0)
    excess_loss_db: float = Field(0.0, ge=0, description="losses beyond the model: foliage, body, cables")
    blockage: Literal["none", "suburban", "urban", "dense-urban", "high-rise"] = Field(
        "none", description="buildings between UAVs and users (ITU-R P.1410 presets, phy/channel/blockage.py): a "
        "blocked link loses the LoS term of Eq. 5, fades as Rayleigh and pays the preset's NLoS excess loss")
    blockage_seed: int = Field(0, ge=0, description="draws the buildings' heights and the lattice offset")


class IslConfig(_Model):
    carrier_hz: float = Field(25e9, gt=0)
    bandwidth_hz: float = Field(10e6, gt=0)
    noise_temperature_k: float = Field(354.81, gt=0)
    antenna_gain_db: float = Field(40.0, description="|eta_max|^2 of Eq. 4 in dB")
    grazing_height_m: float = Field(80e3, ge=0, description="an ISL passing lower than this is blocked")


class SatelliteConfig(_Model):
    name: str = Field(min_length=1)
    altitude_km: Optional[float] = Field(None, gt=100, lt=40000)
    inclination_deg: float = Field(53.0, ge=0, le=180)
    raan_deg: Optional[float] = None
    phase_deg: Optional[float] = None
    zenith_time_s: Optional[float] = Field(None, description="pass straight over the reference point then")
    trail_km: float = Field(0.0, description="distance behind the zenith pass along the orbit")
    tle: Optional[tuple[str, str]] = None
    tx_power_w: float = Field(1.0, gt=0)
    antenna_gain_db: float = 40.0

    @model_validator(mode="after")
    def _one_orbit(self) -> "SatelliteConfig":
        kinds = [self.tle is not None, self.zenith_time_s is not None, self.phase_deg is not None]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one orbit: tle = [line1, line2], or zenith_time_s (a pass over the reference "
                "point), or raan_deg + phase_deg"
            )
        if self.tle is None and self.altitude_km is None:
            raise ValueError("altitude_km is required for a circular orbit")
        return self


class UavConfig(_Model):
    name: str = Field(min_length=1)
    position_m: Optional[tuple[float, float, float]] = None
    waypoints: Optional[list[tuple[float, float, float, float]]] = Field(None, description="[t_s, x, y, z] rows")
    max_speed_mps: float = Field(10.0, gt=0)
    altitude_min_m: float = Field(45.0, ge=0)
    altitude_max_m: float = Field(60.0, gt=0)
    tx_power_w: float = Field(0.2, gt=0)
    antenna_gain_db: float = 0.0

    @model_validator(mode="after")
    def _one_path(self) -> "UavConfig":
        if self.altitude_min_m > self.altitude_max_m:
            raise ValueError(f"altitude_min_m = {self.altitude_min_m} is above altitude_max_m = {self.altitude_max_m}; "
                             "give the limits as min <= max")
        if (self.position_m is None) == (self.waypoints is None):
            raise ValueError("give either position_m = [x, y, z] (hovering) or waypoints = [[t, x, y, z], ...]")
        return self


class UserConfig(_Model):
    name: str = Field(min_length=1)
    position_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tx_power_w: float = Field(0.2, gt=0)
    antenna_gain_db: float = 0.0


class ScenarioConfig(_Model):
    name: str = "scenario"
    duration_s: float = Field(600.0, gt=0)
    reference_lat_deg: float = Field(30.0, ge=-90, le=90)
    reference_lon_deg: float = Field(0.0, ge=-180, le=360)
    epoch_jd: Optional[float] = Field(None, description="Julian date of t = 0 (sets the Earth angle)")
    earth_rotation: bool = True
    min_elevation_deg: float = Field(40.0, ge=0, lt=90, description="tau of Eq. 7")
    feedback_delay_s: Optional[float] = Field(None, ge=0, description="CSI age T of Eq. 2; None = link delay")
    space_air: SpaceAirConfig = SpaceAirConfig()
    air_ground: AirGroundConfig = AirGroundConfig()
    isl: IslConfig = IslConfig()
    satellites: list[SatelliteConfig] = Field(min_length=1)
    uavs: list[UavConfig] = Field(min_length=1)
    users: list[UserConfig] = []
    calibrated_links: dict[str, str] = Field(
        default_factory=dict,
        description='{"tx->rx" = "twin.toml"}: that link\'s fading (K, spread) and oscillator offset from a '
                    "calibration profile (sagin-hil calibrate channel --profile); the geometry keeps its SNR, "
                    "delay and Doppler")
