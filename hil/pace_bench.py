"""`sagin-hil bench emulator`: can the channel emulator service hold a radio's sample rate in real time?

A transmitter streams 2^16-sample complex64 blocks over ZeroMQ PUSH (TCP, loopback) as fast as the
service takes them; the service (`EmulatorService`, real time, `workers=2`: sockets and channel in two
threads, i.e. both cores) impairs them (Doppler with rate, drifting delay, AWGN; Rician fading in a second
entry) and pushes them to a receiver that counts them. Each entry runs `duration_s` (60 s; 5 s quick) at
61.44 MS/s (a Pluto's top rate).

ours: `msps` (samples delivered per wall second), `max_lag_s` / `late_blocks` (how far the output fell
behind the wall clock, and how often by more than LATE_AFTER_S), `held` (no late block and >= 99 % of the
rate). The peer is the rate itself, so the ratio is the real-time factor of the whole service (a paced
service cannot exceed 1).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry, report_progress

__all__ = ["bench_emulator", "pace_run"]

RATE_HZ = 61.44e6
BLOCK = 1 << 16
CHANNELS = {
    "doppler_delay_awgn": dict(snr_db=20.0, signal_power=1.0, doppler_hz=48e3, doppler_rate_hz_per_s=-500.0,
                               delay_s=2.5e-3, delay_rate_s_per_s=2e-6),
    "doppler_delay_rician_awgn": dict(snr_db=20.0, signal_power=1.0, doppler_hz=48e3, doppler_rate_hz_per_s=-500.0,
                                      delay_s=2.5e-3, delay_rate_s_per_s=2e-6, k_factor_db=10.0, max_doppler_hz=100.0),
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pace_run(params: dict[str, Any], duration_s: float, rate_hz: float = RATE_HZ, workers: int = 2) -> dict[str, Any]:
    """Stream for duration_s through a real-time service; what came out, how late, per wall second."""
    import zmq

    from sagin_hil.hil.emulator_service import EmulatorService
    from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams

    ctx = zmq.Context.instance()
    p_tx, p_rx = _free_port(), _free_port()
    tx = ctx.socket(zmq.PUSH)
    tx.setsockopt(zmq.SNDHWM, 8)
    tx.setsockopt(zmq.LINGER, 0)
    tx.bind(f"tcp://127.0.0.1:{p_tx}")
    em = ChannelEmulator(rate_hz, 2.4e9, ChannelParams(**params), seed=1, realtime=True)
    svc = EmulatorService(em, f"tcp://127.0.0.1:{p_tx}", f"tcp://127.0.0.1:{p_rx}", workers=workers).start()
    rx = ctx.socket(zmq.PULL)
    rx.setsockopt(zmq.LINGER, 0)
    rx.setsockopt(zmq.RCVTIMEO, 200)
    rx.connect(f"tcp://127.0.0.1:{p_rx}")
    rng = np.random.default_rng(0)
    blocks = [((rng.normal(size=BLOCK) + 1j * rng.normal(size=BLOCK)) / np.sqrt(2)).astype(np.complex64)
              for _ in range(4)]
    stop = threading.Event()

    def send() -> None:
        i = 0
        while not stop.is_set():
            try:
                tx.send(blocks[i % 4], copy=False, flags=zmq.NOBLOCK)
                i += 1
            except zmq.Again:
                time.sleep(0.0005)

    sender = threading.Thread(target=send, daemon=True)
    got = 0
    try:
        sender.start()
        t0 = None
        while True:
            try:
                msg = rx.recv(copy=False)
            except zmq.Again:
                if t0 is not None and time.perf_counter() - t0 > duration_s:
                    break
                continue
            if t0 is None:
                t0 = time.perf_counter()  # the clock starts with the first block out
                continue
            got += len(msg.buffer) // 8
            if time.perf_counter() - t0 > duration_s:
                break
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        sender.join(2.0)
        st = svc.stats()
        svc.stop()
        tx.close(0)
        rx.close(0)
    rt = st["realtime"] or {}
    msps = got / wall / 1e6
    return {"msps": msps, "realtime_factor": msps / (rate_hz / 1e6), "max_lag_s": float(rt.get("max_lag_s", 0.0)),
            "late_blocks": int(rt.get("late_blocks", 0)), "dropped": int(st["dropped"]), "wall_s": wall,
            "held": bool(rt.get("late_blocks", 0) == 0 and msps >= 0.99 * rate_hz / 1e6)}


def bench_emulator(quick: bool = False) -> dict[str, Any]:
    """Each channel of CHANNELS through the real-time service at 61.44 MS/s for 60 s (quick: 5 s)."""
    duration = 5.0 if quick else 60.0
    out = []
    for i, (name, params) in enumerate(CHANNELS.items()):
        report_progress(f"{name}: {duration:g} s at {RATE_HZ / 1e6:g} MS/s", i, len(CHANNELS))
        ours = pace_run(params, duration)
        peer = {"pluto_61.44msps": {"msps": RATE_HZ / 1e6}}
        out.append(benchmark_entry(f"service_{name}", ours, peer, {"pluto_61.44msps": ours["realtime_factor"]},
                                   settings={"rate_hz": RATE_HZ, "block_samples": BLOCK, "duration_s": duration,
                                             "workers": 2, "transport": "tcp loopback, push-pull",
                                             "channel": params}))
    return {"benchmarks": out}
