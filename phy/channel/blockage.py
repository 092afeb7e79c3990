"""Buildings between UAVs and ground users: which air-ground links are line of sight (LoS), and what NLoS costs.

The built-up area follows the statistical model of ITU-R P.1410 (docs/references.md): buildings cover a
fraction alpha of the land, there are beta of them per km^2, and their heights are Rayleigh distributed with
scale gamma. We place them on a square lattice (side W = 1000 sqrt(alpha / beta) m, pitch 1000 / sqrt(beta) m)
with heights drawn once from a seed, so the map is spatially consistent: the same UAV and user positions
always give the same class, and moving the UAV changes it. A link is NLoS when its straight ray passes below
the roof of a building between the two ends (the building the user stands next to is not counted: users are
outdoors, at street level).

The presets are the four environments of Al-Hourani, Kandeepan and Lardner's air-to-ground model (built on
P.1410), with the mean excess losses eta_LoS / eta_NLoS they measured at 2 GHz:

| preset | alpha | beta (1/km^2) | gamma (m) | eta_LoS (dB) | eta_NLoS (dB) |
|---|---|---|---|---|---|
| suburban | 0.1 | 750 | 8 | 0.1 | 21 |
| urban | 0.3 | 500 | 15 | 1.0 | 20 |
| dense-urban | 0.5 | 300 | 20 | 1.6 | 23 |
| high-rise | 0.5 | 300 | 50 | 2.3 | 34 |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["BLOCKAGE_PRESETS", "BuildingMap", "p1410_los_probability"]

# preset -> (alpha, beta per km^2, gamma m, eta_LoS dB, eta_NLoS dB)
BLOCKAGE_PRESETS: dict[str, tuple[float, float, float, float, float]] = {
    "suburban": (0.1, 750.0, 8.0, 0.1, 21.0),
    "urban": (0.3, 500.0, 15.0, 1.0, 20.0),
    "dense-urban": (0.5, 300.0, 20.0, 1.6, 23.0),
    "high-rise": (0.5, 300.0, 50.0, 2.3, 34.0),
}
_TABLE = 256  # heights repeat every 256 pitches (11 km in the urban preset): far beyond a UAV cell


def p1410_los_probability(ground_distance_m, h_air_m: float, h_ground_m: float, alpha: float, beta_per_km2: float,
                          gamma_m: float) -> np.ndarray:
    """ITU-R P.1410's LoS probability: prod_{n=0}^{m-1} [1 - exp(-h_n^2 / (2 gamma^2))], h_n the ray's height
    above the n-th of the m = floor(r sqrt(alpha beta) / 1000) buildings it crosses."""
    r = np.atleast_1d(np.asarray(ground_distance_m, float))
    out = np.ones_like(r)
    for i, ri in enumerate(r):
        m = int(math.floor(ri * math.sqrt(alpha * beta_per_km2) / 1000.0))
        h = h_air_m - (np.arange(m) + 0.5) * (h_air_m - h_ground_m) / max(m, 1)
        out[i] = float(np.prod(1.0 - np.exp(-np.maximum(h, 0.0) ** 2 / (2.0 * gamma_m**2))))
    return out


@dataclass(frozen=True)
class BuildingMap:
    """Buildings of one preset on a lattice drawn from `seed`; `los` classifies rays through them.

    preset: a BLOCKAGE_PRESETS name; seed: draws the heights and the lattice offset.
    """

    preset: str = "urban"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in BLOCKAGE_PRESETS:
            raise ValueError(f"blockage preset {self.preset!r} is unknown; use one of {sorted(BLOCKAGE_PRESETS)} "
                             "(or 'none' in the scenario for no buildings)")
        alpha, beta, gamma, _, _ = BLOCKAGE_PRESETS[self.preset]
        rng = np.random.default_rng(self.seed)
        object.__setattr__(self, "pitch_m", 1000.0 / math.sqrt(beta))
        object.__setattr__(self, "width_m", 1000.0 * math.sqrt(alpha / beta))
        object.__setattr__(self, "offset_m", rng.uniform(0.0, self.pitch_m, 2))
        object.__setattr__(self, "heights_m", gamma * np.sqrt(-2.0 * np.log(1.0 - rng.random((_TABLE, _TABLE)))))

    @property
    def excess_loss_db(self) -> tuple[float, float]:
        """(eta_LoS, eta_NLoS): the mean excess loss of a LoS and an NLoS link in dB."""
        return BLOCKAGE_PRESETS[self.preset][3], BLOCKAGE_PRESETS[self.preset][4]

    def los(self, air_m, ground_m) -> np.ndarray:
        """True where the ray from each air position [..., 3] to each ground position [..., 3] (broadcast, ENU
        metres) clears every building; shape of the broadcast leading dimensions."""
        a, g = np.broadcast_arrays(np.asarray(air_m, float), np.asarray(ground_m, float))
        shape = a.shape[:-1]
        a, g = np.ascontiguousarray(a.reshape(-1, 3)), np.ascontiguousarray(g.reshape(-1, 3))
        out = np.empty(len(a), np.bool_)
        _los_kernel(a, g, self.offset_m[0], self.offset_m[1], self.pitch_m, self.width_m, self.heights_m, out)
        return out.reshape(shape)


@njit(cache=True)
def _los_kernel(air, ground, ox, oy, pitch, width, heights, out):  # pragma: no cover - compiled
    """Walk the lattice cells under each ray's ground track from the ground end (Amanatides-Woo); in each
    cell, the part of the track over the building is the slab interval [s_in, s_out] of the fraction s of the
    way from the ground, where the ray is lowest at s_in: blocked when the roof is above that height."""
    n_tab = heights.shape[0]
    w = width / pitch
    for i in range(air.shape[0]):
        ux, uy = (ground[i, 0] - ox) / pitch, (ground[i, 1] - oy) / pitch
        dx, dy = (air[i, 0] - ox) / pitch - ux, (air[i, 1] - oy) / pitch - uy
        cx, cy = int(math.floor(ux)), int(math.floor(uy))
        own_x, own_y = cx, cy
        end_x, end_y = int(math.floor(ux + dx)), int(math.floor(uy + dy))
        step_x = 1 if dx > 0 else -1
        step_y = 1 if dy > 0 else -1
        t_x = ((cx + (step_x > 0)) - ux) / dx if dx != 0 else math.inf
        t_y = ((cy + (step_y > 0)) - uy) / dy if dy != 0 else math.inf
        dt_x = abs(1.0 / dx) if dx != 0 else math.inf
        dt_y = abs(1.0 / dy) if dy != 0 else math.inf
        clear = True
        for _ in range(abs(end_x - cx) + abs(end_y - cy) + 1):
            if cx != own_x or cy != own_y:  # the user's own block does not shadow it
                s_in, s_out = 0.0, 1.0
                for u0, d, c in ((ux, dx, cx), (uy, dy, cy)):
                    if d != 0:
                        t1, t2 = (c - u0) / d, (c + w - u0) / d
                        s_in, s_out = max(s_in, min(t1, t2)), min(s_out, max(t1, t2))
                    elif not (c <= u0 <= c + w):
                        s_in, s_out = 1.0, 0.0
                if s_in <= s_out:
                    z = ground[i, 2] + s_in * (air[i, 2] - ground[i, 2])
                    if heights[cx % n_tab, cy % n_tab] > z:
                        clear = False
                        break
            if cx == end_x and cy == end_y:
                break
            if t_x < t_y:
                cx += step_x
                t_x += dt_x
            else:
                cy += step_y
                t_y += dt_y
        out[i] = clear
