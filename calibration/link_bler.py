"""BLER tables measured the way the link runs: packets of the link's own configuration through the channel
emulator (AWGN, or a calibration profile's channel: the twin) and the link's own receiver.

Where `calibration.bler.measure_bler_table` decodes code blocks on ideal symbols (no pulse shaping, no
synchronisation, perfect channel knowledge, a code size of its own), `measure_link_bler` sends whole packets:
PacketTransmitter (the link's LDPC code size, pilots, headers) -> ChannelEmulator -> PacketReceiver
(detection, timing, CFO and phase tracking, equalisation, decoding). The difference between the two at
BLER 0.1 is what synchronisation and estimation cost. Es/N0 is set through the transmit waveform's own
symbol energy at unit power (calibration.profile.symbol_energy_at_unit_power). The table records where it
came from (link configuration, channel, seed, date, version): provenance travels with the numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sagin_hil.calibration.bler import BlerTable

__all__ = ["measure_link_bler", "plot_bler_table", "save_figure"]


def measure_link_bler(mcs_names: list[str] | None, snr_db, packets: int = 20, packet_bytes: int = 2048,
                      link=None, profile: dict | None = None, seed: int = 0, max_errors: int = 100,
                      progress: Callable[[int, int], None] | None = None) -> BlerTable:
    """Code-block error rate vs Es/N0 per MCS at sample level (module docstring).

    mcs_names: MCS names (None: every MCS of phy.mcs.MCS_TABLE); snr_db: Es/N0 grid; packets: per point (a
    point stops early after max_errors block errors); link: phy.link.LinkConfig (default: the link's);
    profile: a calibration profile whose channel (Doppler, delay, CFO, fading) the packets cross, Es/N0 set
    by the grid; None: AWGN only.
    """
    from sagin_hil import __version__
    from sagin_hil.calibration.profile import symbol_energy_at_unit_power
    from sagin_hil.datatypes import SampleBlock
    from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams
    from sagin_hil.phy.link import LinkConfig, PacketReceiver, PacketTransmitter
    from sagin_hil.phy.mcs import MCS_TABLE, get_mcs

    link = link or LinkConfig()
    names = list(mcs_names) if mcs_names else [m.name for m in MCS_TABLE]
    for n in names:
        get_mcs(n)  # an unknown name is named before anything is measured
    grid = np.asarray(snr_db, float)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"snr_db must be an ascending grid of >= 2 Es/N0 values, got {list(grid)}")
    if packets < 1:
        raise ValueError(f"packets = {packets!r} must be >= 1 per point")
    fs = link.symbol_rate_hz * link.sps
    carrier = float(profile["waveform"]["carrier_hz"]) if profile else 2.4e9
    tx, rx = PacketTransmitter(link), PacketReceiver(link)
    rng = np.random.default_rng(seed)
    curves: dict[str, list[float]] = {}
    blocks_used: dict[str, list[int]] = {}
    total, done, t0 = len(names) * grid.size, 0, time.perf_counter()
    guard = np.zeros(64 * link.sps, np.complex64)
    for name in names:
        wave0 = tx.modulate(bytes(packet_bytes), name, 0)
        n_blocks = int(tx.plan(packet_bytes, name).n_blocks)
        es = symbol_energy_at_unit_power(wave0, link.sps, link.rolloff)
        base = ChannelParams.from_calibration(profile, es) if profile else ChannelParams(signal_power=1.0)
        curves[name], blocks_used[name] = [], []
        for j, esn0 in enumerate(grid):
            params = dataclasses.replace(base, snr_db=float(esn0) - 10 * math.log10(es), signal_power=1.0)
            em = ChannelEmulator(fs, carrier, params, seed=seed * 1009 + j)
            errors = blocks = 0
            for p in range(packets):
                payload = rng.integers(0, 256, packet_bytes, dtype=np.uint8).tobytes()
                wave = np.concatenate([guard, tx.modulate(payload, name, p % 65536), guard])
                lag = int(round(params.delay_s * fs))
                # each packet continues the emulator's stream, so its fading and Doppler evolve between packets
                out = em.process(SampleBlock(np.concatenate([wave, np.zeros(lag, np.complex64)]), fs,
                                             start_time_s=em.samples_processed / fs)).samples
                pkt = rx.demodulate(out)
                ok = np.zeros(n_blocks, bool) if pkt is None or not pkt.header_ok else np.asarray(pkt.block_ok)
                errors += int(np.count_nonzero(~ok[:n_blocks])) + max(n_blocks - ok.size, 0)
                blocks += n_blocks
                if errors >= max_errors:
                    break
            curves[name].append(errors / blocks)
            blocks_used[name].append(blocks)
            done += 1
            if progress is not None:
                progress(done, total)
    meta = {
        "source": "sample level: PacketTransmitter -> ChannelEmulator -> PacketReceiver",
        "channel": (f"calibration profile (Es/N0 from the grid): {profile.get('source', {}).get('recording', '?')}"
                    if profile else "AWGN"),
        "link": dataclasses.asdict(link), "packet_bytes": packet_bytes, "code_k": link.ldpc_k,
        "packets_per_point": packets, "max_errors": max_errors, "blocks": blocks_used, "seed": seed,
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sagin_hil": __version__, "measure_time_s": round(time.perf_counter() - t0, 1),
    }
    return BlerTable([float(s) for s in grid], curves, meta)


def plot_bler_table(table: BlerTable, path: str | Path, reference: BlerTable | None = None) -> Path:
    """BLER vs Es/N0 per MCS (log scale), with `reference` (e.g. the symbol-level table) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, name in enumerate(table.mcs_names):
        colour = f"C{i % 10}"
        y = np.maximum(np.asarray(table.curves[name]), 1e-4)
        ax.semilogy(table.snr_db, y, "o-", ms=3, color=colour, label=name)
        if reference is not None and name in reference.curves:
            ax.semilogy(reference.snr_db, np.maximum(reference.curves[name], 1e-4), "--", color=colour, lw=0.9)
    ax.set_xlabel("Es/N0 (dB)")
    ax.set_ylabel("code-block error rate")
    ax.set_ylim(1e-4, 1.2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    src = table.meta.get("channel", "")
    ax.set_title(f"BLER at sample level ({src}); dashed: symbol level" if reference else f"BLER ({src})",
                 fontsize=9)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
