"""Command-line commands of this layer, registered on the `sagin-hil` app (heavy imports stay inside commands).

    sagin-hil pluto-emu --port 30431 [--scenario FILE --link leo0->uav0] [--attenuation-db 40]
    sagin-hil radio probe ip:192.168.2.1 | driver=hackrf | tcp://127.0.0.1:5556 | capture.sigmf-meta
    sagin-hil radio record URI --samples 100000 --out capture [--carrier-hz ... --sample-rate-hz ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

radio_app = typer.Typer(
    help="Probe, record from and replay radios (Pluto, SoapySDR, ZeroMQ, SigMF).", no_args_is_help=True
)


def kind_from_uri(uri: str) -> str:
    """Guess the radio kind from a URI: ip:/usb: -> pluto, driver= -> soapy, tcp:// -> zmq, .sigmf -> replay."""
    if uri.startswith(("ip:", "usb:", "local:")):
        return "pluto"
    if "driver=" in uri:
        return "soapy"
    if uri.startswith(("tcp://", "ipc://", "inproc://")):
        return "zmq"
    if ".sigmf" in uri:
        return "replay"
    raise typer.BadParameter(
        f"cannot tell the radio kind of {uri!r}: use ip:HOST[:PORT] (Pluto), driver=NAME (SoapySDR), "
        "tcp://HOST:PORT (ZeroMQ) or a .sigmf-meta file"
    )


def _open(uri: str, **settings):
    from sagin_hil.hil.radio import RadioConfig, RadioError, open_radio

    try:
        return open_radio(RadioConfig.parse({"kind": kind_from_uri(uri), "uri": uri, **settings}))
    except RadioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@radio_app.command("probe")
def probe(
    uri: str = typer.Argument(..., help="ip:192.168.2.1, driver=hackrf, tcp://127.0.0.1:5556 or a .sigmf-meta"),
    samples: int = typer.Option(4096, help="samples to receive for the level check (0: settings only)"),
) -> None:
    """Open a radio, print what it is and its settings, and receive a few samples to show the level."""
    import numpy as np

    from sagin_hil.hil.radio import RadioError

    radio = _open(uri)
    with radio:
        typer.echo(repr(radio))
        for key, value in radio.config.model_dump().items():
            if value not in (None, "", False):
                typer.echo(f"  {key:16s} {value}")
        if samples > 0:
            try:
                res = radio.rx(samples)
            except RadioError as exc:
                typer.echo(f"rx failed: {exc}", err=True)
                raise typer.Exit(1) from None
            x = res.samples
            rms = float(np.sqrt(np.mean(np.abs(x) ** 2)))
            peak = float(np.max(np.abs(np.concatenate([x.real, x.imag]))))
            typer.echo(
                f"rx {len(x)} samples: rms {20 * np.log10(max(rms, 1e-12)):.1f} dBFS, peak |I/Q| {peak:.3f}"
                f"{' (CLIPPING: lower rx_gain_db)' if peak >= 0.999 else ''}, "
                f"overflows {res.overflows}, underflows {res.underflows}"
            )


@radio_app.command("record")
def record(
    uri: str = typer.Argument(..., help="the radio to record from"),
    out: Path = typer.Option(..., help="recording base name (writes OUT.sigmf-meta and OUT.sigmf-data)"),
    samples: int = typer.Option(1_000_000, help="how many samples to record"),
    carrier_hz: float = typer.Option(2.4e9),
    sample_rate_hz: float = typer.Option(1e6),
    rx_gain_db: str = typer.Option("30", help="dB, or agc"),
    chunk: int = typer.Option(65536, help="samples per rx() call (one SigMF capture each)"),
) -> None:
    """Record from any radio into a SigMF recording (partial recordings are kept if the radio fails)."""
    from sagin_hil.hil.radio import RadioError

    gain = rx_gain_db if rx_gain_db in ("agc", "slow_attack", "fast_attack") else float(rx_gain_db)
    radio = _open(uri, carrier_hz=carrier_hz, sample_rate_hz=sample_rate_hz, rx_gain_db=gain, record_path=str(out))
    done = 0
    with radio:
        try:
            while done < samples:
                done += len(radio.rx(min(chunk, samples - done)).samples)
        except RadioError as exc:
            typer.echo(f"error after {done} samples (kept in {out}.sigmf-data): {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"recorded {done} samples to {out}.sigmf-meta / .sigmf-data")


def pluto_emu(
    port: int = typer.Option(30431, help="TCP port (30431 is iiod's; 0 = any free port)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)"),
    scenario: Optional[Path] = typer.Option(None, help="scenario TOML: the channel is that link (else a bench cable)"),
    link: Optional[str] = typer.Option(None, help="scenario link TX->RX, e.g. leo0->uav0 (default: first pair)"),
    attenuation_db: float = typer.Option(40.0, help="bench attenuator between TX and RX, dB"),
    xo_ppm: float = typer.Option(0.0, help="reference oscillator error of the emulated Pluto, ppm"),
    realtime: bool = typer.Option(False, help="pace RX to the sample rate; slow readers overflow"),
    seed: Optional[int] = typer.Option(None, help="noise seed (reproducible runs)"),
    pair: bool = typer.Option(False, help="two Plutos cabled to each other (the second on the next port)"),
    xo_ppm_b: float = typer.Option(0.0, help="with --pair: the second radio's oscillator error, ppm"),
) -> None:
    """Serve an emulated ADALM-Pluto over the iiod network protocol (adi.Pluto("ip:HOST:PORT") connects)."""
    import time

    from sagin_hil.hil.iiod import start_pluto_emulator

    common = dict(scenario=scenario, link=link, host=host, attenuation_db=attenuation_db, realtime=realtime)
    servers = []
    try:
        servers.append(start_pluto_emulator(port=port, xo_ppm=xo_ppm, seed=seed, **common))
        if pair:
            b = start_pluto_emulator(port=0 if port == 0 else port + 1, xo_ppm=xo_ppm_b, peer=servers[0],
                                     seed=None if seed is None else seed + 1, **common)
            servers[0].rf.tx_peer = b.rf
            servers.append(b)
    except (OSError, ValueError, RuntimeError) as exc:
        for s in servers:
            s.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    channel = f"scenario {scenario} link {link or 'first pair'}" if scenario else f"bench cable, {attenuation_db:g} dB"
    for s in servers:
        hears = "its own TX" if len(servers) == 1 else "the other radio's TX"
        typer.echo(f"emulated Pluto at {s.uri} ({channel}; its RX hears {hears}); Ctrl-C stops it", err=True)
    typer.echo(f'  python -c "import adi; sdr = adi.Pluto(\'{servers[0].uri}\'); print(sdr)"', err=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.close()


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`."""
    app.command("pluto-emu")(pluto_emu)
    app.add_typer(radio_app, name="radio")
