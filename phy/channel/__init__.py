"""The channel: the world the signal crosses, from orbits to impaired samples (docs/channel.md).

Modules, in the order of the signal's story:
    geometry      spherical Earth, frames, elevation, the visibility arc (Eq. 7-8)
    orbits        circular and TLE (sgp4) orbits, UAV trajectories within speed and altitude limits
    scenario      Scenario / load_scenario: nodes from TOML, link_state(tx, rx, t), visibility, csi_delta
    scenario_config  the TOML schema (pydantic)
    link_budget   free-space loss, air-to-ground (Eq. 5-6), ISL (Eq. 4), noise, LinkState
    csi           outdated CSI (Eq. 2) as a statistical model for link abstraction
    tdl           NTN-TDL-A..D tap profiles (TR 38.811)
    gauss         the kernels' counter-based Gaussian generator (Box-Muller, vectorised)
    kernels       the numba per-sample kernel
    emulator      ChannelParams, ChannelEmulator (streaming, state across chunks)
    link_emulator ScenarioChannel: an emulator that follows a scenario link in time
    bench         `sagin-hil bench channel`

Names are loaded lazily so `import sagin_hil.phy.channel` stays cheap (no numba compile).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Scenario": "scenario", "ScenarioError": "scenario", "load_scenario": "scenario",
    "LinkState": "link_budget", "ChannelParams": "emulator", "ChannelEmulator": "emulator",
    "ScenarioChannel": "link_emulator", "OutdatedCsi": "csi", "csi_correlation": "csi",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"sagin_hil.phy.channel.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'sagin_hil.phy.channel' has no attribute {name!r}")
