"""`sagin-hil bench rx`: throughput and real-time factor of the receive and transmit chains, split by stage.

One benchmark per MCS and one for analog (deep JSCC) bursts. The signal is what a radio would hand over:
one packet (2048 bytes, or 8192 analog symbols with 16 bytes of side information) at Es/N0 = 25 dB with a
small carrier offset, after 2000 samples of noise, repeated STREAM_PACKETS times back to back, cut into
16384-sample buffers and fed to one streaming receiver (`StreamReceiver`, what sits between radios: built
once, as a receiver between radios is); the one-shot `PacketReceiver.demodulate` is timed on one packet's
samples beside it. Figures are MS/s per CPU-second of this process (the best of at least 15 runs and
MIN_WALL_S seconds: a shared machine has slow spells a short series can fall inside): the
chains run on one thread, so that is per core, and other jobs on a shared machine do not count.

The peers are the radios' sample rates (2, 10 and 61.44 MS/s), so each ratio is a real-time factor: above
1 the chain keeps up. With samples per symbol fixed (LinkConfig's 4) the work per sample does not depend on
the rate, so one measurement serves all three; the output says so. `rx_stage_share` / `tx_stage_share`
split the CPU time by stage so the next bottleneck is visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry, report_progress
from sagin_hil.phy.bench import best_cpu_time_s

__all__ = ["bench_rx", "RATES_MSPS", "received_signal"]

RATES_MSPS = {"radio_2msps": 2.0, "radio_10msps": 10.0, "pluto_61.44msps": 61.44}
PAYLOAD_BYTES, ANALOG_SYMBOLS, SIDE_BYTES = 2048, 8192, 16
ESN0_DB, CFO_CPSYM, LEAD_SAMPLES, CHUNK_SAMPLES, STREAM_PACKETS = 25.0, 0.003, 2000, 16384, 8
MIN_WALL_S = 4.0  # per entry: the receive chain is timed for at least this long (best run kept)


def received_signal(tx, mcs: str, rng: np.random.Generator, seq: int = 7) -> tuple[np.ndarray, Any]:
    """(received samples complex64, what was sent: payload bytes or analog symbols) for one packet."""
    from sagin_hil.phy.link import ANALOG

    if mcs == ANALOG:
        sent = ((rng.normal(size=ANALOG_SYMBOLS) + 1j * rng.normal(size=ANALOG_SYMBOLS)) / np.sqrt(2)).astype(np.complex64)
        x = tx.modulate_symbols(sent, seq, side=bytes(range(SIDE_BYTES)))
    else:
        sent = rng.integers(0, 256, PAYLOAD_BYTES, dtype=np.uint8).tobytes()
        x = tx.modulate(sent, mcs, seq)
    x = np.concatenate([np.zeros(LEAD_SAMPLES, np.complex64), x])
    n = np.arange(x.size)
    x = x * np.exp(2j * np.pi * CFO_CPSYM / tx.cfg.sps * n)
    n0 = tx.cfg.sps * 10 ** (-ESN0_DB / 10)  # unit sample power is Es = sps per symbol: N0 per sample = Es / (Es/N0)
    noise = np.sqrt(n0 / 2) * (rng.normal(size=x.size) + 1j * rng.normal(size=x.size))
    return (x + noise).astype(np.complex64), sent


def _stream(rx, y: np.ndarray, packets: int = STREAM_PACKETS) -> list:
    """`packets` copies of y back to back through the streaming receiver rx, in CHUNK_SAMPLES buffers."""
    out = []
    for _ in range(packets):
        for a in range(0, y.size, CHUNK_SAMPLES):
            out += rx.feed(y[a : a + CHUNK_SAMPLES])
    return out + rx.flush()


def _shares(seconds: dict[str, float]) -> dict[str, float]:
    total = sum(seconds.values()) or 1.0
    return {k: round(v / total, 4) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}


def _entry(mcs: str, repeats: int, rng: np.random.Generator, min_wall_s: float = 0.0) -> dict[str, Any]:
    from sagin_hil.phy.link import ANALOG, LinkConfig, PacketReceiver, PacketTransmitter
    from sagin_hil.phy.stream import StreamReceiver

    cfg = LinkConfig()
    tx = PacketTransmitter(cfg)
    y, sent = received_signal(tx, mcs, rng)
    packets = _stream(StreamReceiver(cfg), y)
    ok = len(packets) == STREAM_PACKETS and all(
        np.allclose(p.analog, sent, atol=0.2) if mcs == ANALOG else p.payload == sent for p in packets)
    rx = StreamReceiver(cfg)
    t_stream = best_cpu_time_s(lambda: _stream(rx, y), repeats, min_wall_s) / STREAM_PACKETS
    one_shot = PacketReceiver(cfg)
    t_one = best_cpu_time_s(lambda: one_shot.demodulate(y), repeats=repeats)
    if mcs == ANALOG:
        def send():
            return tx.modulate_symbols(sent, 7, side=bytes(range(SIDE_BYTES)))
    else:
        def send():
            return tx.modulate(sent, mcs, 7)
    n_tx = send().size
    t_tx = best_cpu_time_s(send, repeats=repeats)
    # the stage split: one more run of each chain with its clock on
    srx = StreamReceiver(cfg)
    srx.clock.enabled = True
    _stream(srx, y)
    tx.clock.enabled = True
    send()
    tx.clock.enabled = False
    msps = y.size / t_stream / 1e6
    ours = {
        "msps": msps,
        **{f"realtime_factor_{r:g}msps": msps / r for r in RATES_MSPS.values()},
        "one_shot_msps": y.size / t_one / 1e6,
        "tx_msps": n_tx / t_tx / 1e6,
        **{f"tx_realtime_factor_{r:g}msps": n_tx / t_tx / 1e6 / r for r in RATES_MSPS.values()},
        "decoded": bool(ok),
        "samples": int(y.size),
        "rx_stage_share": _shares(srx.clock.seconds),
        "tx_stage_share": _shares(tx.clock.seconds),
    }
    peers = {name: {"msps": rate} for name, rate in RATES_MSPS.items()}
    ratio = {name: msps / rate for name, rate in RATES_MSPS.items()}
    return benchmark_entry(mcs, ours, peers, ratio, settings={
        "what": "ratio = real-time factor: the streaming receive chain's MS/s per CPU-second over the radio's "
                "sample rate (like with like: samples per second); at a fixed 4 samples per symbol the work per "
                "sample is the same at every rate, so one measurement serves the three",
        "esn0_db": ESN0_DB, "cfo_cpsym": CFO_CPSYM, "chunk_samples": CHUNK_SAMPLES, "sps": cfg.sps,
        "stream": f"{STREAM_PACKETS} packets back to back, each after {LEAD_SAMPLES} samples of noise, "
                  "through one StreamReceiver",
        "timing": f"best of >= {repeats} runs over >= {min_wall_s:g} s (CPU time of this process)",
        "payload": f"{ANALOG_SYMBOLS} analog symbols + {SIDE_BYTES} side bytes" if mcs == ANALOG
                   else f"{PAYLOAD_BYTES} bytes",
        "decoder": cfg.decoder,
    })


def bench_rx(quick: bool = False) -> dict[str, Any]:
    """Every MCS and analog bursts through the receive and transmit chains; quick=True: fewer repeats."""
    from sagin_hil.phy.link import ANALOG
    from sagin_hil.phy.mcs import MCS_TABLE

    rng = np.random.default_rng(19)
    names = [m.name for m in MCS_TABLE] + [ANALOG]
    out = []
    for i, mcs in enumerate(names):
        report_progress(f"{mcs}: receive and transmit chains", i, len(names))
        out.append(_entry(mcs, 1, rng) if quick else _entry(mcs, 15, rng, MIN_WALL_S))
    return {"benchmarks": out}
