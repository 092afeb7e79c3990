"""An emulated ADALM-Pluto speaking the iiod network protocol.

    server = start_pluto_emulator()            # background thread, a free port on 127.0.0.1
    sdr = adi.Pluto(server.uri)                # unmodified pyadi-iio code
    ...
    server.close()

`sagin-hil pluto-emu --port N [--scenario FILE]` runs the same server in the foreground.
"""

from __future__ import annotations

from typing import Any

from sagin_hil.hil.iiod.server import IiodServer

__all__ = ["IiodServer", "start_pluto_emulator", "start_pluto_pair"]


def start_pluto_emulator(
    port: int = 0,
    scenario: Any = None,
    link: str | None = None,
    host: str = "127.0.0.1",
    attenuation_db: float = 40.0,
    peer: IiodServer | None = None,
    **rf_kwargs: Any,
) -> IiodServer:
    """Start an emulated Pluto serving iiod on host:port in a background thread.

    Parameters
    ----------
    port: TCP port (0 = any free port; read `.port` / `.uri`).
    scenario: None for a bench cable with `attenuation_db`; else a scenario (path to a TOML file or a
      loaded scenario) whose `link` (e.g. "leo0->uav0") is the channel between TX and RX.
    link: the scenario link; default: the scenario's first link.
    peer: another emulated Pluto whose TX this one receives instead of its own (see start_pluto_pair).
    rf_kwargs: PlutoRF options (xo_ppm, realtime, seed, noise_figure_db, tx_full_scale_dbm, start_time_s).

    Output
    ------
    IiodServer with .port, .uri ("ip:127.0.0.1:PORT"), .close(); also a context manager.
    """
    factory = None
    if scenario is not None:
        from sagin_hil.hil.iiod.scenario_link import scenario_channel_factory

        factory = scenario_channel_factory(scenario, link)
    return IiodServer(
        host=host, port=port, attenuation_db=attenuation_db, channel_factory=factory,
        tx_peer=None if peer is None else peer.rf, **rf_kwargs,
    ).start()


def start_pluto_pair(
    xo_ppm: tuple[float, float] = (0.0, 0.0), seed: int | None = None, **kwargs: Any
) -> tuple[IiodServer, IiodServer]:
    """Two emulated Plutos cabled to each other (a two-radio bench): A's TX reaches B's RX and B's TX A's RX.

    Each has its own settings and reference oscillator (xo_ppm per radio), so an LO mismatch between the
    two radios appears as a carrier offset that xo_correction can cancel. kwargs go to both
    (attenuation_db, scenario, link, realtime, ...).
    """
    a = start_pluto_emulator(xo_ppm=xo_ppm[0], seed=seed, **kwargs)
    b = start_pluto_emulator(xo_ppm=xo_ppm[1], seed=None if seed is None else seed + 1, peer=a, **kwargs)
    a.rf.tx_peer = b.rf
    return a, b
