"""NTN tapped-delay-line profiles (3GPP TR 38.811 sec. 6.9.2) for the emulator's optional multipath.

Each profile lists taps (normalised delay, power dB, LoS). Delays scale by the wanted RMS delay spread;
powers are renormalised to unit total so the multipath leaves the mean received power unchanged.
NTN-TDL-A/B are Rayleigh; in C and D the first tap has a LoS part (K = 10.224 dB and 11.707 dB).
"""

from __future__ import annotations

import numpy as np

__all__ = ["NTN_TDL", "tdl_taps"]

# (normalised delay, power dB, is_los) per tap; a LoS tap and a Rayleigh tap may share delay 0.
NTN_TDL: dict[str, tuple[tuple[float, float, bool], ...]] = {
    "NTN-TDL-A": ((0.0, 0.0, False), (1.0811, -4.675, False), (2.8416, -6.482, False)),
    "NTN-TDL-B": ((0.0, 0.0, False), (0.7249, -1.973, False), (0.7410, -4.332, False), (5.7392, -11.914, False)),
    "NTN-TDL-C": ((0.0, -0.394, True), (0.0, -10.618, False), (14.8124, -23.373, False)),
    "NTN-TDL-D": ((0.0, -0.284, True), (0.0, -11.991, False), (0.5596, -9.887, False), (7.3340, -16.771, False)),
}


def tdl_taps(profile: str, delay_spread_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taps of an NTN-TDL profile.

    Input
    -----
    profile: "NTN-TDL-A" .. "NTN-TDL-D"; delay_spread_s: the RMS delay spread the normalised delays scale to.

    Output
    ------
    delays_s (float64), powers (linear, summing to 1), is_los (bool), one entry per tap.
    """
    if profile not in NTN_TDL:
        raise ValueError(f"unknown TDL profile {profile!r}; choose one of {sorted(NTN_TDL)} or None")
    if not delay_spread_s >= 0:
        raise ValueError(f"delay_spread_s = {delay_spread_s} must be >= 0 (seconds, e.g. 100e-9)")
    rows = NTN_TDL[profile]
    delays = np.array([r[0] for r in rows]) * delay_spread_s
    powers = 10.0 ** (np.array([r[1] for r in rows]) / 10.0)
    return delays, powers / powers.sum(), np.array([r[2] for r in rows])
