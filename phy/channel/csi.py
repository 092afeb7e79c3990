"""Outdated CSI (Eq. 2) as a statistical model for link-abstraction simulation.

h = delta h_hat + sqrt(1 - delta^2) g, delta = J0(2 pi f_D,max T), g ~ CN(0, E|h_hat|^2): the channel the
transmitter planned with (h_hat) and the one the signal meets (h) are jointly Gaussian with correlation
delta. A rate or MCS chosen from |h_hat|^2 then meets the effective SNR |h|^2 P / sigma^2.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import j0

__all__ = ["csi_correlation", "OutdatedCsi"]


def csi_correlation(max_doppler_hz: float, feedback_delay_s: float) -> float:
    """delta = J0(2 pi f_D,max T) of Eq. 2 (may be negative for large f_D T)."""
    if max_doppler_hz < 0 or feedback_delay_s < 0:
        raise ValueError(
            f"max_doppler_hz = {max_doppler_hz} and feedback_delay_s = {feedback_delay_s} must be >= 0"
        )
    return float(j0(2.0 * math.pi * max_doppler_hz * feedback_delay_s))


class OutdatedCsi:
    """Draws the true channel given the estimate the transmitter holds (Eq. 2).

    Parameters
    ----------
    delta: the CSI correlation in [-1, 1] (see `csi_correlation`).
    seed: seed of the generator for g.

    Input
    -----
    h_hat: complex array, the outdated estimates.

    Output
    ------
    complex array of the same shape: delta h_hat + sqrt(1 - delta^2) g, g ~ CN(0, mean |h_hat|^2).
    """

    def __init__(self, delta: float, seed: int | None = 0) -> None:
        if not -1.0 <= delta <= 1.0:
            raise ValueError(f"delta = {delta} must lie in [-1, 1] (it is J0(2 pi f_D T))")
        self.delta = float(delta)
        self._rng = np.random.default_rng(seed)

    def __call__(self, h_hat: np.ndarray) -> np.ndarray:
        h_hat = np.asarray(h_hat, dtype=np.complex128)
        var = float(np.mean(np.abs(h_hat) ** 2)) if h_hat.size else 0.0
        g = (self._rng.standard_normal(h_hat.shape) + 1j * self._rng.standard_normal(h_hat.shape)) * math.sqrt(var / 2)
        return self.delta * h_hat + math.sqrt(1.0 - self.delta**2) * g

    def snr_db(self, snr_hat_db: np.ndarray | float, size: int | None = None) -> np.ndarray:
        """Effective SNR draws for a link planned at `snr_hat_db` (per draw |h|^2 / |h_hat|^2 scaling).

        With a deterministic LoS estimate (Eq. 1, |h_hat| fixed) the result is a noncentral chi-square
        variable: mean power delta^2 + (1 - delta^2) = 1 relative to the planned SNR.
        """
        snr_hat = np.asarray(snr_hat_db, float)
        shape = snr_hat.shape if size is None else (size,) + snr_hat.shape
        phase = np.exp(1j * self._rng.uniform(0, 2 * np.pi, shape))
        h = self(phase)
        return snr_hat + 10.0 * np.log10(np.maximum(np.abs(h) ** 2, 1e-30))
