"""The emulated Pluto's channel from a scenario: one link (tx -> rx) of engineer B's ChannelEmulator.

The emulator is fed DAC-normalised samples and returns them delayed, Doppler-shifted, faded and with the
link's noise at the link's SNR; PlutoRF then places the result at the RX input at the bench level plan
(TX power minus attenuation_db), so the scenario sets the impairments and SNR while the gains and the ADC
behave as on the bench.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

__all__ = ["scenario_channel_factory", "parse_link"]


def parse_link(scenario: Any, link: str | None) -> tuple[str, str]:
    """'leo0->uav0' -> ('leo0', 'uav0'); None -> the scenario's first satellite to its first UAV (or user)."""
    if link:
        tx, sep, rx = link.partition("->")
        if not sep or not tx.strip() or not rx.strip():
            raise ValueError(f"link {link!r} must read 'TX->RX', e.g. 'leo0->uav0'")
        return tx.strip(), rx.strip()
    sats, uavs, users = scenario.satellites, scenario.uavs, scenario.users
    if sats and (uavs or users):
        return sats[0], (uavs or users)[0]
    if uavs and users:
        return uavs[0], users[0]
    raise ValueError("the scenario has no satellite/UAV/user pair; name the link, e.g. link='leo0->uav0'")


def scenario_channel_factory(scenario: Any, link: str | None = None) -> Callable[[float, float], Any]:
    """A factory (sample_rate_hz, carrier_hz) -> channel with .process(SampleBlock) for PlutoRF.

    scenario: a path to a scenario TOML file or a loaded Scenario. link: "tx->rx" (default: first pair).
    """
    from sagin_hil.phy.channel.scenario import Scenario, load_scenario

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))
    tx, rx = parse_link(sc, link)
    for node in (tx, rx):
        sc.node_kind(node)  # raises naming an unknown node
    try:
        from sagin_hil.phy.channel.emulator import ChannelEmulator
    except ImportError as exc:
        raise RuntimeError(
            f"the scenario channel needs sagin_hil.phy.channel.emulator, which is not importable ({exc}); "
            "run without --scenario for a bench cable"
        ) from None

    def factory(sample_rate_hz: float, carrier_hz: float) -> Any:
        return ChannelEmulator.for_link(sc, tx, rx, sample_rate_hz)

    factory.link = f"{tx}->{rx}"  # type: ignore[attr-defined]
    return factory
