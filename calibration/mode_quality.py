"""Quality per mode measured the way the link runs: images through one hop at sample level, per Es/N0.

The mode table (calibration.quality) measures each codec at its source: JPEG 2000 and the VQ modes without a
channel, deep JSCC over ideal AWGN symbols. Here every mode's payload crosses the link itself:
PacketTransmitter -> ChannelEmulator (AWGN, or a calibration profile's channel: the twin) -> PacketReceiver.
A digital mode is cut into the link's packets at the MCS link adaptation would pick at that Es/N0 (the
highest whose BLER table entry meets the target), with the link's ARQ rounds; what is still lost is
zero-filled and handed to the decoder, and a payload the decoder cannot read shows as a grey frame (as the
runner does). An analog mode sends its symbols as analog bursts and decodes what the receiver equalised, at
the SNR it measured. The table records where it came from (link, channel, seed, date, version).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["measure_mode_quality", "plot_mode_quality"]

_GUARD_SYMBOLS = 64


def _mcs_for(es_n0_db: float, bler_table, target_bler: float) -> str:
    """Link adaptation's pick: the MCS of most information bits whose BLER meets the target at es_n0_db
    (the most robust one when none does)."""
    from sagin_hil.phy.mcs import get_mcs

    names = sorted(bler_table.mcs_names, key=lambda n: get_mcs(n).spectral_efficiency)
    ok = [n for n in names if bler_table.required_snr_db(n, target_bler) <= es_n0_db]
    return ok[-1] if ok else names[0]


class _Hop:
    """One emulated hop at a fixed Es/N0: waveforms in, RxPackets out (the emulator's stream continues, so
    its fading evolves from packet to packet)."""

    def __init__(self, link, es_n0_db: float, es_unit: float, profile: dict | None, seed: int):
        from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams
        from sagin_hil.phy.link import PacketReceiver

        self.fs = link.symbol_rate_hz * link.sps
        base = ChannelParams.from_calibration(profile, es_unit) if profile else ChannelParams(signal_power=1.0)
        self.params = dataclasses.replace(base, snr_db=es_n0_db - 10 * math.log10(es_unit), signal_power=1.0)
        carrier = float(profile["waveform"]["carrier_hz"]) if profile else 2.4e9
        self.emulator = ChannelEmulator(self.fs, carrier, self.params, seed=seed)
        self.rx = PacketReceiver(link)
        self.guard = np.zeros(_GUARD_SYMBOLS * link.sps, np.complex64)

    def __call__(self, wave: np.ndarray):
        from sagin_hil.datatypes import SampleBlock

        lag = np.zeros(int(round(self.params.delay_s * self.fs)), np.complex64)
        block = SampleBlock(np.concatenate([self.guard, wave.astype(np.complex64), self.guard, lag]), self.fs,
                            start_time_s=self.emulator.samples_processed / self.fs)
        return self.rx.demodulate(self.emulator.process(block).samples)


def _send_bits(hop: _Hop, tx, data: bytes, mcs: str, packet_bytes: int, rounds: int, seq0: int) -> bytes:
    """`data` over the hop in packets with ARQ; lost packets zero-filled (best effort when heard)."""
    chunks = [data[i: i + packet_bytes] for i in range(0, len(data), packet_bytes)] or [b""]
    got: list[bytes | None] = [None] * len(chunks)
    pending, seq = list(range(len(chunks))), seq0
    for _ in range(rounds + 1):
        still = []
        for i in pending:
            pkt = hop(tx.modulate(chunks[i], mcs, seq % 65536))
            seq += 1
            if pkt is not None and pkt.header_ok:
                got[i] = pkt.payload[: len(chunks[i])]
                if np.all(pkt.block_ok):
                    continue
            still.append(i)
        pending = still
        if not pending:
            break
    return b"".join(g if g is not None else bytes(len(c)) for g, c in zip(got, chunks))


def measure_mode_quality(modes: list[str], es_n0_db, n_images: int = 4, size: int = 128, bpp: float = 1.0,
                         link=None, profile: dict | None = None, max_retransmissions: int = 2,
                         target_bler: float = 0.1, packet_bytes: int = 2048, seed: int = 0,
                         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Mean PSNR and SSIM of `n_images` held-out images per mode (codecs.modes.MODES names) and Es/N0 (dB)
    after one hop at sample level (module docstring); JPEG 2000 (mode1) at `bpp` bits per pixel.

    Returns {"es_n0_db": grid, "modes": {mode: {"psnr_db": [...], "ssim": [...], "mcs": [...] (digital),
    "bits" or "symbols"}}, "provenance": {...}}.
    """
    from sagin_hil import __version__
    from sagin_hil.calibration.bler import BlerTable
    from sagin_hil.calibration.profile import symbol_energy_at_unit_power
    from sagin_hil.codecs import CodecError, get_codec
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import psnr, ssim
    from sagin_hil.codecs.modes import MODES
    from sagin_hil.phy.link import LinkConfig, PacketTransmitter

    specs = [MODES.get(m) for m in modes]  # an unknown name is named before anything is measured
    grid = np.atleast_1d(np.asarray(es_n0_db, float))
    if grid.ndim != 1 or grid.size < 1 or not np.all(np.isfinite(grid)):
        raise ValueError(f"es_n0_db must be finite Es/N0 values in dB, got {es_n0_db!r}")
    if n_images < 1:
        raise ValueError(f"n_images = {n_images!r}: measure at least one image")
    link = link or LinkConfig()
    tx = PacketTransmitter(link)
    es_unit = symbol_energy_at_unit_power(tx.modulate(bytes(packet_bytes), "qpsk-1/2", 0), link.sps, link.rolloff)
    bler_table = BlerTable.load()
    images = load_images(n=n_images, size=size, split="eval")
    n_pixels = size * size
    out: dict[str, Any] = {}
    total, done, t0 = len(specs) * grid.size, 0, time.perf_counter()
    for spec in specs:
        codec = get_codec(spec.codec)
        row: dict[str, Any] = {"psnr_db": [], "ssim": []} | ({} if spec.analog else {"mcs": []})
        for j, esn0 in enumerate(grid):
            hop = _Hop(link, float(esn0), es_unit, profile, seed * 1009 + j)
            mcs = None if spec.analog else _mcs_for(float(esn0), bler_table, target_bler)
            q_psnr, q_ssim = [], []
            for k, (_, img) in enumerate(images):
                payload = codec.encode(img, spec.budget(bpp, n_pixels, snr_db=float(esn0)))
                try:
                    if spec.analog:
                        sym = np.asarray(payload.symbols, np.complex64)
                        pkt = hop(tx.modulate_symbols(sym, k % 65536, payload.data))
                        heard = pkt is not None and pkt.header_ok and pkt.analog is not None
                        shown = codec.decode(pkt.payload if heard else b"",
                                             symbols=pkt.analog if heard else np.zeros_like(sym),
                                             snr_db=float(pkt.snr_db) if heard else float(esn0))
                        row["symbols"] = int(sym.size)
                    else:
                        data = _send_bits(hop, tx, payload.data, mcs, packet_bytes, max_retransmissions, 1000 * k)
                        shown = codec.decode(data)
                        row["bits"] = 8 * len(payload.data)
                except CodecError:
                    shown = np.full_like(img, 128)  # an erasure: the user sees a grey frame
                q_psnr.append(float(psnr(img, shown)))
                q_ssim.append(float(ssim(img, shown)))
            row["psnr_db"].append(float(np.mean(q_psnr)))
            row["ssim"].append(float(np.mean(q_ssim)))
            if mcs is not None:
                row["mcs"].append(mcs)
            done += 1
            if progress is not None:
                progress(done, total)
        out[spec.name] = row
    return {
        "es_n0_db": [float(v) for v in grid], "modes": out,
        "provenance": {
            "source": "sample level: codec -> PacketTransmitter -> ChannelEmulator -> PacketReceiver -> codec",
            "channel": (f"calibration profile (Es/N0 from the grid): {profile.get('source', {}).get('recording', '?')}"
                        if profile else "AWGN"),
            "link": dataclasses.asdict(link), "packet_bytes": packet_bytes, "max_retransmissions": max_retransmissions,
            "mcs_rule": f"highest MCS of the BLER table with BLER <= {target_bler} at the point's Es/N0",
            "images": [n for n, _ in images], "size_px": size, "bpp_mode1": bpp, "seed": seed,
            "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "sagin_hil": __version__,
            "measure_time_s": round(time.perf_counter() - t0, 1),
        },
    }


def plot_mode_quality(table: dict[str, Any], path: str | Path) -> Path:
    """PSNR and SSIM against Es/N0, one line per mode, the digital modes' MCS noted at each point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sagin_hil.calibration.link_bler import save_figure

    x = table["es_n0_db"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, row in table["modes"].items():
        for ax, key in zip(axes, ("psnr_db", "ssim")):
            ax.plot(x, row[key], "o-", ms=3, label=name)
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].set_ylabel("SSIM")
    for ax in axes:
        ax.set_xlabel("Es/N0 (dB)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"quality per mode after one hop at sample level ({table['provenance']['channel']})", fontsize=9)
    return save_figure(fig, path)
