"""`sagin-hil emulator ...`: the channel emulator service and a link-budget table (heavy imports stay inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

emulator_app = typer.Typer(help="The channel emulator: serve impaired IQ over ZeroMQ, print link budgets.",
                           no_args_is_help=True)


def _load(scenario: Optional[Path]):
    from sagin_hil.phy.channel.scenario import Scenario, ScenarioError, load_scenario

    try:
        return load_scenario(scenario) if scenario is not None else Scenario.default()
    except ScenarioError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _split_link(link: str) -> tuple[str, str]:
    """A link id as spelled everywhere in the project, "tx->rx"."""
    from sagin_hil.datatypes import parse_link_id

    try:
        return parse_link_id(link)
    except ValueError:
        # "leo0-" is what the shell leaves of an unquoted leo0->uav0 (it reads > as a redirect)
        hint = " (quote it: the shell reads > as a redirect)" if link.endswith("-") else ""
        typer.secho(f"error: --link {link!r} must read TX->RX, e.g. --link 'leo0->uav0'{hint}", fg="red", err=True)
        raise typer.Exit(2) from None


def _endpoint(text: str) -> str:
    """A bare port number stays on the loopback: "5556" -> "tcp://127.0.0.1:5556"."""
    return f"tcp://127.0.0.1:{text}" if text.isdigit() else text


def _next_port(endpoint: str) -> str:
    """The same endpoint one port up: a concrete suggestion for a port that is taken."""
    head, _, port = endpoint.rpartition(":")
    return f"{head}:{int(port) + 1}" if port.isdigit() else endpoint


@emulator_app.command()
def serve(
    tx: str = typer.Option("tcp://127.0.0.1:5555", "--tx",
                           help="Endpoint of the transmitter's gr-zeromq sink (connected); a bare port means 127.0.0.1."),
    rx: str = typer.Option("tcp://127.0.0.1:5556", "--rx",
                           help="Endpoint this service binds for the receiver; a bare port means 127.0.0.1."),
    scenario: Optional[Path] = typer.Option(None, help="Scenario TOML (default: the packaged default)."),
    link: str = typer.Option("leo0->uav0", help="The scenario link TX->RX to emulate (quote it in a shell)."),
    pattern: str = typer.Option("push-pull", help="push-pull, pub-sub or req-rep (srsRAN style)."),
    control: Optional[str] = typer.Option(None, help="REP endpoint for JSON control, e.g. tcp://127.0.0.1:5560."),
    sample_rate: float = typer.Option(1e6, help="Sample rate of the IQ stream in samples/s."),
    start_time: float = typer.Option(0.0, help="Scenario time of the first sample, s."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace output to the sample rate (else virtual time)."),
    doppler_scale: float = typer.Option(1.0, help="Fraction of the carrier Doppler applied (0 = pre-compensated)."),
    snr_db: Optional[float] = typer.Option(None, help="Hold the SNR at this value instead of the link budget's."),
    signal_power: Optional[float] = typer.Option(None, help="Reference input power for the SNR (default: measured)."),
    pass_tags: bool = typer.Option(False, "--pass-tags", help="Messages carry the gr-zeromq tag header."),
    seed: int = typer.Option(0, help="Seed of the fading and noise."),
    workers: int = typer.Option(1, help="2: sockets and channel in two threads (two cores; one is enough for 61.44 MS/s)."),
    rt_priority: int = typer.Option(
        0, help="1-99: real-time (SCHED_FIFO) scheduling of the service's threads at this priority, where the OS "
        "grants it (CAP_SYS_NICE or `ulimit -r`); with --realtime on a busy machine."),
    profile: Optional[Path] = typer.Option(
        None, help="A calibration profile (`calibrate channel --profile`): emulate its fitted channel (the twin) "
        "instead of the scenario link; SNR from its Es/N0 for a stream of --sps samples per symbol."),
    sps: int = typer.Option(4, help="With --profile: samples per symbol of the stream (sets SNR per sample)."),
) -> None:
    """Take IQ from --tx, impair it as the scenario link does, give it to --rx (gr-zeromq compatible)."""
    from sagin_hil.hil.emulator_service import PATTERNS, BindError, EmulatorService
    from sagin_hil.phy.channel.emulator import ChannelEmulator
    from sagin_hil.phy.channel.scenario import ScenarioError

    if pattern not in PATTERNS:
        typer.secho(f"error: --pattern {pattern!r}; choose one of {', '.join(PATTERNS)}", fg="red", err=True)
        raise typer.Exit(2)
    tx, rx = _endpoint(tx), _endpoint(rx)
    control = _endpoint(control) if control else None
    sc = _load(scenario)
    tx_node, rx_node = _split_link(link)
    overrides = {k: v for k, v in {"snr_db": snr_db, "signal_power": signal_power}.items() if v is not None}
    try:
        if profile is not None:
            from sagin_hil.phy.channel.emulator import ChannelParams, load_calibration_profile

            prof = load_calibration_profile(profile)
            # a continuous stream of unit-power symbols has Es = sps at unit mean power; the power is measured
            params = ChannelParams.from_calibration(prof, float(sps), signal_power=None)
            carrier = float(prof["waveform"].get("carrier_hz") or 2.4e9)
            em = ChannelEmulator(sample_rate, carrier, params, seed=seed, realtime=realtime)
        else:
            em = ChannelEmulator.for_link(sc, tx_node, rx_node, sample_rate, seed=seed, realtime=realtime,
                                          doppler_scale=doppler_scale, **overrides)
        svc = EmulatorService(em, tx, rx, pattern, control, pass_tags, start_time_s=start_time, workers=workers,
                              rt_priority=rt_priority)
    except (ScenarioError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    what = f"the calibrated twin {profile}" if profile is not None else f"{tx_node} -> {rx_node}"
    typer.echo(f"emulating {what} ({pattern}): {tx} -> {rx}"
               + (f", control {control}" if control else "") + ("; real time" if realtime else "; virtual time"))
    try:
        svc.run()
    except KeyboardInterrupt:
        pass
    except BindError as exc:  # e.g. "Address already in use": name the option that picks the port
        option = "--rx" if exc.option.startswith("rx") else "--control"
        typer.secho(f"error: cannot bind {option} {exc.endpoint}: {exc.reason}; another process holds it: "
                    f"pass a free port with {option} (e.g. {option} {_next_port(exc.endpoint)})", fg="red", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # other zmq errors, e.g. a malformed --tx
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    stats = svc.stats()
    typer.echo(str({k: v for k, v in stats.items() if k != "emulator"}))
    rt = stats.get("realtime")
    if rt and rt["late_blocks"]:
        typer.secho(f"warning: fell behind real time: {rt['late_blocks']} late blocks, up to "
                    f"{1e3 * rt['max_lag_s']:.1f} ms behind; lower --sample-rate or use --workers 2", fg="yellow",
                    err=True)


@emulator_app.command("link-budget")
def link_budget(
    scenario: Optional[Path] = typer.Option(None, help="Scenario TOML (default: the packaged default)."),
    link: str = typer.Option("leo0->uav0", help="The scenario link TX->RX (quote it in a shell)."),
    start: float = typer.Option(0.0, help="First time, s."),
    stop: float = typer.Option(240.0, help="Last time, s."),
    step: float = typer.Option(30.0, help="Time step, s."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per time (for scripts and pipes)."),
) -> None:
    """Print the link budget of one link over time (distance, delay, Doppler, SNR, rate)."""
    import json
    import sys

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from sagin_hil.phy.channel.scenario import ScenarioError

    sc = _load(scenario)
    tx_node, rx_node = _split_link(link)
    if not step > 0:
        typer.secho(f"error: --step {step} must be > 0 s", fg="red", err=True)
        raise typer.Exit(2)
    table = Table(title=f"{tx_node} -> {rx_node}")
    for col in ("t s", "dist km", "delay ms", "elev deg", "Doppler kHz", "rate Hz/s", "SNR dB", "K dB", "visible", "Mbit/s"):
        table.add_column(col, justify="right")
    try:
        for t in np.arange(start, stop + 1e-9, step):
            s = sc.link_state(tx_node, rx_node, float(t))
            if as_json:
                row = {"t_s": float(t), "tx": tx_node, "rx": rx_node, "distance_m": s.distance_m, "delay_s": s.delay_s,
                       "elevation_deg": s.elevation_deg, "doppler_hz": s.doppler_hz,
                       "doppler_rate_hz_per_s": s.doppler_rate_hz_per_s, "snr_db": s.snr_db,
                       "k_factor_db": s.k_factor_db, "visible": bool(s.visible), "rate_bps": s.rate_bps}
                # strict JSON: non-finite numbers as "inf" / "-inf" / "nan", as the control socket does
                typer.echo(json.dumps({k: (str(v) if isinstance(v, float) and not np.isfinite(v) else v)
                                       for k, v in row.items()}))
                continue
            table.add_row(f"{t:.0f}", f"{s.distance_m / 1e3:.1f}", f"{s.delay_s * 1e3:.3f}", f"{s.elevation_deg:.1f}",
                          f"{s.doppler_hz / 1e3:.2f}", f"{s.doppler_rate_hz_per_s:.1f}", f"{s.snr_db:.1f}",
                          f"{s.k_factor_db:.1f}", "yes" if s.visible else "no", f"{s.rate_bps / 1e6:.1f}")
    except ScenarioError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if not as_json:
        # piped (no terminal), rich would squeeze the table to 80 columns and cut the numbers
        Console(width=None if sys.stdout.isatty() else 160).print(table)


def register(app: typer.Typer) -> None:
    """Add `sagin-hil emulator ...` to `app`."""
    app.add_typer(emulator_app, name="emulator")
