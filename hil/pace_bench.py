"""`sagin-hil bench emulator`: can the channel emulator service hold a radio's sample rate in real time?

Every party runs in a process of its own, as on a bench: the service (`EmulatorService`, real time;
`workers=1`: sockets and channel in one thread; `rt_priority=10`: real-time scheduling where the OS grants
it) as `sagin-hil emulator serve` runs it, and each radio end as its driver (or GNU Radio) would. A thread
that shares its interpreter with others waits for the lock they hold; with the service inside the bench's
own process, or both radio ends in one, blocks came out late now and then (docs/benchmarks.md). The
transmitter streams 2^16-sample complex64 blocks over ZeroMQ PUSH (TCP, loopback) as fast as the service
takes them, the service impairs them (Doppler with rate, drifting delay, AWGN; Rician fading in a second
entry), and the receiver counts what comes out. Each entry runs `duration_s` (60 s; 5 s quick) at
61.44 MS/s (a Pluto's top rate), all on this machine's cores, measured after WARMUP_S
of flow (the first block waits for connections and fresh pages; the lag it causes is forgotten).

ours: `msps` (samples delivered per wall second), `max_lag_s` / `late_blocks` (how far the output fell
behind the wall clock, and how often by more than LATE_AFTER_S), `held` (no late block and >= 99 % of the
rate), `cpu_cores` (the machine's busy time over the run, in cores: the headroom left), `stolen_cores` (time
a virtual machine's hypervisor gave to other guests: capacity this run did not have) and
`rt_priority_granted`. The peer is the rate itself, so the ratio is the real-time factor of the whole
service (a paced service cannot exceed 1).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry, report_progress
from sagin_hil.hil.ports import free_endpoint

__all__ = ["bench_emulator", "pace_run"]

RATE_HZ = 61.44e6
RT_PRIORITY = 10  # SCHED_FIFO for the service's threads where the OS grants it (EmulatorService.rt_priority)
# one thread for sockets and channel: with the channel at 5 ns a sample it has the time, and the hand-over
# between two threads cost more than it saved (measured: fewer late blocks with 1 than with 2)
WORKERS = 1
WARMUP_S = 1.0  # the stream flows this long before the measurement starts (connections, first pages, clock)
BLOCK = 1 << 16
CHANNELS = {
    "doppler_delay_awgn": dict(snr_db=20.0, signal_power=1.0, doppler_hz=48e3, doppler_rate_hz_per_s=-500.0,
                               delay_s=2.5e-3, delay_rate_s_per_s=2e-6),
    "doppler_delay_rician_awgn": dict(snr_db=20.0, signal_power=1.0, doppler_hz=48e3, doppler_rate_hz_per_s=-500.0,
                                      delay_s=2.5e-3, delay_rate_s_per_s=2e-6, k_factor_db=10.0, max_doppler_hz=100.0),
}


def _radio_tx(tx_endpoint: str, stop: Any) -> None:
    """The transmitting radio's process: stream blocks as fast as the service takes them, until `stop`."""
    import zmq

    ctx = zmq.Context()
    tx = ctx.socket(zmq.PUSH)
    tx.setsockopt(zmq.SNDHWM, 8)
    tx.setsockopt(zmq.LINGER, 0)
    tx.bind(tx_endpoint)
    rng = np.random.default_rng(0)
    blocks = [((rng.normal(size=BLOCK) + 1j * rng.normal(size=BLOCK)) / np.sqrt(2)).astype(np.complex64)
              for _ in range(4)]
    i = 0
    try:
        while not stop.is_set():
            try:
                tx.send(blocks[i % 4], copy=False, flags=zmq.NOBLOCK)
                i += 1
            except zmq.Again:
                tx.poll(100, zmq.POLLOUT)  # the service's queue is full: wait for room (or look at `stop`)
    finally:
        tx.close(0)
        ctx.term()


def _radio_rx(rx_endpoint: str, duration_s: float, result: Any, stop: Any) -> None:
    """The receiving radio's process: once blocks have come back for WARMUP_S, put "measuring" on `result`,
    count what comes back for duration_s, and put (samples, wall seconds) on `result` (or give up at `stop`)."""
    import zmq

    ctx = zmq.Context()
    rx = ctx.socket(zmq.PULL)
    rx.setsockopt(zmq.LINGER, 0)
    rx.setsockopt(zmq.RCVTIMEO, 200)
    rx.connect(rx_endpoint)
    got, first, t0, deadline = 0, None, None, time.perf_counter() + duration_s + 60  # 60 s to start
    try:
        while time.perf_counter() < deadline and not stop.is_set():
            try:
                msg = rx.recv(copy=False)
            except zmq.Again:
                if t0 is not None and time.perf_counter() - t0 > duration_s:
                    break
                continue
            now = time.perf_counter()
            if first is None:
                first = now
            if t0 is None:
                if now - first >= WARMUP_S:
                    t0, deadline = now, now + duration_s + 5  # the clock starts with this block out
                    result.put("measuring")
                continue
            got += len(msg.buffer) // 8
            if now - t0 > duration_s:
                break
        result.put((got, time.perf_counter() - t0 if t0 is not None else 0.0))
    finally:
        rx.close(0)
        ctx.term()


def _cpu_jiffies() -> np.ndarray:
    """[busy, stolen, total] CPU jiffies of the whole machine from /proc/stat (zeros where there is none):
    busy = user + nice + system + irq + softirq; stolen = time the hypervisor ran someone else's work."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return np.zeros(3)
    return np.array([v[0] + v[1] + v[2] + v[5] + v[6], v[7], sum(v)], float)


def _service(params: dict[str, Any], rate_hz: float, workers: int, rt_priority: int, e_tx: str, e_rx: str,
             measuring: Any, done: Any, out: Any) -> None:
    """The service's process, as `sagin-hil emulator serve` runs it: a real-time EmulatorService between the
    radios; its lag statistics restart when `measuring` is set, and its stats() go on `out` once `done` is.
    Its "behind real time" warnings are held back until then: the first block waits for the connections."""
    import logging

    from sagin_hil.hil.emulator_service import EmulatorService
    from sagin_hil.hil.emulator_service import log as service_log
    from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams

    service_log.setLevel(logging.ERROR)
    try:
        em = ChannelEmulator(rate_hz, 2.4e9, ChannelParams(**params), seed=1, realtime=True)
        svc = EmulatorService(em, e_tx, e_rx, workers=workers, rt_priority=rt_priority).start()
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")  # for the parent's error; the exit code says it too
        raise
    try:
        measuring.wait()
        em.reset_lag()
        service_log.setLevel(logging.NOTSET)
        done.wait()
        out.put(svc.stats())
    finally:
        svc.stop()


def _next(q: Any, timeout_s: float, procs: dict[str, Any], errors: Any) -> Any:
    """The next message on q; an error naming the process that died (with what it said on `errors`), or
    saying that nothing came for timeout_s."""
    import queue

    end = time.perf_counter() + timeout_s
    while True:
        try:
            return q.get(timeout=max(0.0, min(1.0, end - time.perf_counter())))
        except queue.Empty:
            pass
        dead = {name: p.exitcode for name, p in procs.items() if p.exitcode not in (None, 0)}
        if dead:
            try:
                said = f": {errors.get(timeout=1.0)}"
            except queue.Empty:
                said = ""
            codes = ", ".join(f"the {name} process exited with code {c}" for name, c in dead.items())
            raise RuntimeError(f"bench emulator: {codes}{said}")
        if time.perf_counter() >= end:
            raise RuntimeError(f"bench emulator: nothing heard for {timeout_s:g} s; is the loopback interface up?")


def pace_run(params: dict[str, Any], duration_s: float, rate_hz: float = RATE_HZ, workers: int = WORKERS,
             rt_priority: int = RT_PRIORITY) -> dict[str, Any]:
    """Stream for duration_s through a real-time service; what came out, how late, per wall second."""
    e_tx, e_rx = free_endpoint(), free_endpoint()
    spawn = mp.get_context("spawn")  # fresh interpreters: not forks of this one's threads and sockets
    result, stats = spawn.Queue(), spawn.Queue()
    stop, measuring, done = spawn.Event(), spawn.Event(), spawn.Event()
    procs = {"transmitter": spawn.Process(target=_radio_tx, args=(e_tx, stop), daemon=True),
             "receiver": spawn.Process(target=_radio_rx, args=(e_rx, duration_s, result, stop), daemon=True),
             "service": spawn.Process(target=_service, daemon=True, args=(
                 params, rate_hz, workers, rt_priority, e_tx, e_rx, measuring, done, stats))}
    for p in procs.values():
        p.start()
    try:
        j0 = _cpu_jiffies()
        msg = _next(result, 90.0, procs, stats)
        if msg == "measuring":
            measuring.set()
            j0 = _cpu_jiffies()
            msg = _next(result, duration_s + 30.0, procs, stats)
        got, wall = msg
        d = _cpu_jiffies() - j0
        measuring.set()
        done.set()
        st = _next(stats, 30.0, procs, stats)
    finally:
        stop.set()
        measuring.set()
        done.set()
        for p in procs.values():
            p.join(10.0)
            if p.is_alive():
                p.kill()
    rt = st["realtime"] or {}
    msps = got / wall / 1e6 if wall > 0 else 0.0
    busy, stolen = (d[:2] / d[2] * (os.cpu_count() or 1)) if d[2] > 0 else (float("nan"), float("nan"))
    return {"msps": msps, "realtime_factor": msps / (rate_hz / 1e6), "max_lag_s": float(rt.get("max_lag_s", 0.0)),
            "late_blocks": int(rt.get("late_blocks", 0)), "dropped": int(st["dropped"]), "wall_s": wall,
            "cpu_cores": float(busy), "stolen_cores": float(stolen), "rt_priority_granted": st["rt_priority"]["granted"],
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
                                             "workers": WORKERS, "rt_priority": RT_PRIORITY,
                                             "transport": "tcp loopback, push-pull",
                                             "processes": "service, transmitter and receiver: one each, on the same machine",
                                             "channel": params}))
    return {"benchmarks": out}
