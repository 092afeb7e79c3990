"""`ScenarioChannel`: a ChannelEmulator whose parameters follow one scenario link as the stream flows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sagin_hil.datatypes import SampleBlock
from sagin_hil.phy.channel.emulator import PARAM_BOUNDS, ChannelEmulator, ChannelParams

__all__ = ["ScenarioChannel", "params_from_link_state"]


def _clamp(name: str, value: float) -> float:
    """A finite scenario value held within ChannelParams' bounds (beyond them the channel is already
    noise-free, pure LoS or pure noise); infinities pass (they have their own meaning)."""
    lo, hi = PARAM_BOUNDS[name][:2]
    return value if math.isinf(value) else min(max(value, lo), hi)


def params_from_link_state(
    st: Any, base: ChannelParams | None = None, doppler_scale: float = 1.0, **overrides: Any
) -> ChannelParams:
    """ChannelParams for a `LinkState`: its delay and Doppler (with their rates), SINR, K and fading spread.

    The delay drifts at -doppler / carrier (the envelope follows the same range rate as the phase).
    doppler_scale scales the carrier Doppler and its rate (0 = a receiver that pre-compensates the
    Doppler from ephemeris, as NTN terminals do; 1 = none). A link that is not visible is `blocked`:
    only noise comes out.
    """
    base = base or ChannelParams()
    k = st.k_factor_db
    fields = dict(
        delay_s=st.delay_s,
        delay_rate_s_per_s=-st.doppler_hz / st.carrier_hz,
        doppler_hz=st.doppler_hz * doppler_scale,
        doppler_rate_hz_per_s=st.doppler_rate_hz_per_s * doppler_scale,
        snr_db=_clamp("snr_db", st.snr_db) if math.isfinite(st.snr_db) else base.snr_db,
        k_factor_db=None if k == math.inf else _clamp("k_factor_db", k),
        max_doppler_hz=st.max_doppler_hz,
        blocked=not st.visible or not math.isfinite(st.snr_db),
    )
    if fields["snr_db"] is None and not math.isfinite(st.snr_db):
        fields["snr_db"] = 0.0  # below the horizon from the start: noise at the input's power
    fields.update(overrides)
    if fields.get("noise_power") is not None:
        fields["snr_db"] = None
    return ChannelParams(**{**base.__dict__, **fields})


class ScenarioChannel(ChannelEmulator):
    """A ChannelEmulator driven by `scenario.link_state(tx, rx, t)` (built by `ChannelEmulator.for_link`).

    Parameters
    ----------
    scenario, tx, rx: the link.
    sample_rate_hz: stream rate. carrier_hz: the radio carrier (default: the link's carrier).
    update_interval_s: parameters are refreshed at sample indices that are multiples of this interval.
    doppler_scale: fraction of the carrier Doppler applied (0 = pre-compensated by the receiver).
    overrides: ChannelParams fields held fixed (they win over the scenario's values).
    interference: False leaves the other UAVs' power out of the SNR of a UAV -> user link (the caller adds
    their signals).

    Input
    -----
    SampleBlock whose start_time_s is scenario time (a bare array continues from the last block's time).

    Output
    ------
    The impaired SampleBlock (or array).
    """

    def __init__(self, scenario: Any, tx: str, rx: str, sample_rate_hz: float, carrier_hz: float | None,
                 seed: int, realtime: bool, update_interval_s: float, overrides: dict[str, Any],
                 doppler_scale: float = 1.0, interference: bool = True) -> None:
        self.scenario, self.tx, self.rx = scenario, tx, rx
        self.interference = bool(interference)  # False: the other UAVs' power stays out of this link's SNR
        self.doppler_scale = float(doppler_scale)
        self.overrides = dict(overrides)
        st = scenario.link_state(tx, rx, 0.0, self.interference)  # validates the link names
        self.link_carrier_hz = st.carrier_hz
        if not update_interval_s > 0:
            raise ValueError(f"update_interval_s = {update_interval_s} must be > 0 s")
        self._every = max(1, int(round(update_interval_s * sample_rate_hz)))
        self._t_next: float = 0.0  # scenario time of the next sample when a bare array arrives
        self.last_state = st
        super().__init__(sample_rate_hz, st.carrier_hz if carrier_hz is None else carrier_hz,
                         params_from_link_state(st, None, self.doppler_scale, **self.overrides), seed=seed, realtime=realtime)
        self._fresh = False  # refresh at the first sample with the block's own time

    def _refresh(self, t_s: float) -> None:
        st = self.scenario.link_state(self.tx, self.rx, t_s, self.interference)
        self.last_state = st
        self._configure(params_from_link_state(st, self._params, self.doppler_scale, **self.overrides))

    def update(self, **changes: Any) -> None:
        """Hold these parameters fixed from now on (they override the scenario).

        Checked before they are kept: a refused change leaves both the emulator and the overrides as they
        were (a bad override stored first would break every later refresh).
        """
        super().update(**changes)
        self.overrides.update({k: getattr(self.params, k) for k in changes})

    def process(self, block: SampleBlock | np.ndarray) -> SampleBlock | np.ndarray:
        t0 = block.start_time_s if isinstance(block, SampleBlock) else self._t_next
        x = block.samples if isinstance(block, SampleBlock) else np.asarray(block)
        if isinstance(block, SampleBlock) and abs(block.sample_rate_hz - self.sample_rate_hz) > 1e-6 * self.sample_rate_hz:
            return super().process(block)  # raises the rate error
        if x.dtype != np.complex64 or x.ndim != 1:
            raise ValueError(f"samples must be a 1-D complex64 array; got {x.dtype} shape {x.shape}")
        fs, n_abs0 = self.sample_rate_hz, self._n
        # A block that does not continue the stream in time (the scenario jumped ahead between bursts)
        # must not run its first samples on the parameters of the old time.
        jumped = self._fresh and abs(t0 - self._t_next) > 0.5 / fs
        pieces, i = [], 0
        while i < len(x):
            n = n_abs0 + i
            if n % self._every == 0 or not self._fresh or (i == 0 and jumped):
                self._refresh(t0 + i / fs)
                self._fresh = True
            j = min(len(x), i + self._every - n % self._every)
            pieces.append(self._run(x[i:j]))
            i = j
        out = np.concatenate(pieces) if pieces else np.empty(0, np.complex64)
        self._t_next = t0 + len(x) / fs
        return block.with_samples(out) if isinstance(block, SampleBlock) else out

    __call__ = process

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s["link"] = {"tx": self.tx, "rx": self.rx, **self.last_state.to_dict()}
        return s
