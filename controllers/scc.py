"""The semantic communication capacity (SCC) of a delivered task, Eq. 14 of [P000] (docs/references.md).

    w_g = xi_q * Q_norm + xi_d * D_norm,      xi_q + xi_d = 1

with the two terms normalised to [0, 1] as follows (the paper says only "normalised"):

    Q_norm = clip((Q - Q_min) / (Q_ceil - Q_min), 0, 1)   quality margin over the floor, as a fraction of
                                                          the headroom up to Q_ceil (50 dB PSNR by default)
    D_norm = clip((D_max - D) / D_max, 0, 1)              delay margin as a fraction of the deadline

A task that misses its deadline or quality floor (constraints 15h-i) scores 0 when `strict` (default),
so w_g in [0, 1] and the reward (18) r = sum_g w_g counts only tasks delivered within their QoS.
"""

from __future__ import annotations

import math

import numpy as np

from sagin_hil.datatypes import Task

__all__ = ["scc_weight", "scc_weights", "QUALITY_CEILING_DB"]

QUALITY_CEILING_DB = 50.0  # PSNR at which 8-bit images are visually lossless; the top of Q_norm


def scc_weights(
    delay_s: np.ndarray,
    quality_db: np.ndarray,
    deadline_s: np.ndarray,
    quality_min_db: np.ndarray,
    weight_quality: np.ndarray | float = 0.5,
    quality_ceiling_db: float = QUALITY_CEILING_DB,
    strict: bool = True,
) -> np.ndarray:
    """Vectorised SCC over tasks.

    Input
    -----
    delay_s, quality_db: measured end-to-end delay D and quality Q (PSNR dB) per task.
    deadline_s, quality_min_db: D_max and Q_min per task.
    weight_quality: xi_q (xi_d = 1 - xi_q).

    Output
    ------
    w: SCC per task in [0, 1]; NaN delay or quality (task lost) scores 0.
    """
    d, q = np.asarray(delay_s, float), np.asarray(quality_db, float)
    d_max, q_min = np.asarray(deadline_s, float), np.asarray(quality_min_db, float)
    xi_q = np.asarray(weight_quality, float)
    if np.any(d_max <= 0):
        raise ValueError(f"deadline_s must be > 0 seconds; got {d_max[d_max <= 0].ravel()[:3]}")
    if np.any(q_min >= quality_ceiling_db):
        raise ValueError(f"quality_min_db must be below quality_ceiling_db = {quality_ceiling_db}; "
                         f"got {q_min[q_min >= quality_ceiling_db].ravel()[:3]} (raise the ceiling)")
    if np.any((xi_q < 0) | (xi_q > 1)):
        raise ValueError(f"weight_quality must lie in [0, 1]; got {xi_q}")
    with np.errstate(invalid="ignore"):
        q_norm = np.clip((q - q_min) / (quality_ceiling_db - q_min), 0.0, 1.0)
        d_norm = np.clip((d_max - d) / d_max, 0.0, 1.0)
        w = xi_q * q_norm + (1.0 - xi_q) * d_norm
        if strict:
            w = np.where((d <= d_max) & (q >= q_min), w, 0.0)
    return np.where(np.isnan(d) | np.isnan(q), 0.0, w)


def scc_weight(task: Task, delay_s: float, quality_db: float, quality_ceiling_db: float = QUALITY_CEILING_DB,
               strict: bool = True) -> float:
    """SCC w_g (Eq. 14) of one delivered task, in [0, 1]; see the module docstring for the normalisation.

    Input
    -----
    task: gives D_max (deadline_s), Q_min (quality_min_db) and xi_q, xi_d.
    delay_s: measured end-to-end delay D in seconds (NaN or inf if the task was lost).
    quality_db: measured PSNR Q in dB (NaN if lost; inf for a lossless copy).
    """
    q = min(float(quality_db), 1e9) if not math.isnan(quality_db) else quality_db
    w = scc_weights(np.array([delay_s]), np.array([q]), np.array([task.deadline_s]),
                    np.array([task.quality_min_db]), task.weight_quality, quality_ceiling_db, strict)
    return float(w[0])
