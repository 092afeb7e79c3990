"""`sagin-hil bench channel`: samples per second through Doppler + delay + Rician + AWGN on one core.

Ours (the numba ChannelEmulator) against, in the same run, the same chain in plain numpy and GNU Radio's
channels blocks (fading_model + channel_model) in Debian's /usr/bin/python3 when the `gnuradio` package
is installed. Speeds are samples per CPU-second (`msps`, all threads of a process counted, so a
multi-threaded flowgraph is charged for every core it uses) and per wall-second (`msps_wall`).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.benchmarks import benchmark_entry

__all__ = ["bench_channel", "numpy_chain", "CHAIN"]

FS_HZ = 10e6
CHAIN = dict(doppler_hz=48e3, doppler_rate_hz_per_s=-544.0, delay_s=2.5e-3 + 0.37e-6, delay_rate_s_per_s=-2.4e-5,
             k_factor_db=10.0, max_doppler_hz=100.0, snr_db=10.0)
GR_PYTHON = "/usr/bin/python3"


def _cpu_and_wall(fn, repeats: int) -> tuple[float, float]:
    """Best CPU time and best wall time of `repeats` calls after one warm-up."""
    fn()
    cpu, wall = math.inf, math.inf
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall


def numpy_chain(x: np.ndarray, fs: float, rng: np.random.Generator, n_sin: int = 32) -> np.ndarray:
    """The same chain vectorised in numpy (one block, no streaming state): the `numpy` peer.

    Cubic-Lagrange time-varying delay, sum-of-sinusoids Rician fading on a grid with linear interpolation,
    Doppler with rate, AWGN at the measured input power.
    """
    c = CHAIN
    n = np.arange(len(x))
    t = n / fs
    tau = c["delay_s"] * fs + c["delay_rate_s_per_s"] * n
    p = n - tau
    ip = np.floor(p).astype(np.int64)
    mu = p - ip
    xp = np.concatenate([np.zeros(int(np.ceil(tau.max())) + 4, np.complex64), x, np.zeros(2, np.complex64)])
    off = int(np.ceil(tau.max())) + 4
    pts = [xp[np.clip(ip + k + off, 0, len(xp) - 1)] for k in (-1, 0, 1, 2)]
    y = (-mu * (mu - 1) * (mu - 2) / 6 * pts[0] + (mu + 1) * (mu - 1) * (mu - 2) / 2 * pts[1]
         - (mu + 1) * mu * (mu - 2) / 2 * pts[2] + (mu + 1) * mu * (mu - 1) / 6 * pts[3])
    u = max(1, int(fs / (64 * c["max_doppler_hz"])))
    tg = np.arange(0, len(x) + u, u) / fs
    m = n_sin // 2
    alpha = (2 * np.pi * np.arange(1, m + 1) - np.pi + rng.uniform(-np.pi, np.pi)) / (4 * m)
    ph = rng.uniform(0, 2 * np.pi, (2, m))
    wd = 2 * np.pi * c["max_doppler_hz"]
    gi = np.cos(np.outer(tg, wd * np.cos(alpha)) + ph[0]).sum(1)
    gq = np.cos(np.outer(tg, wd * np.sin(alpha)) + ph[1]).sum(1)
    k = 10 ** (c["k_factor_db"] / 10)
    h_grid = math.sqrt(k / (k + 1)) + math.sqrt(1 / (k + 1)) * (gi + 1j * gq) / math.sqrt(m)
    h = np.interp(t, tg, h_grid.real) + 1j * np.interp(t, tg, h_grid.imag)
    y = y * h * np.exp(2j * np.pi * (c["doppler_hz"] * t + 0.5 * c["doppler_rate_hz_per_s"] * t * t))
    std = math.sqrt(np.mean(np.abs(x) ** 2) / 10 ** (c["snr_db"] / 10) / 2)
    w = rng.standard_normal((2, len(x)), dtype=np.float32) * std
    return (y + (w[0] + 1j * w[1])).astype(np.complex64)


_GR_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
from gnuradio import blocks, channels, gr
n, fs, fd, k, f_off, noise_v, eps = (float(a) for a in sys.argv[1:8])
rng = np.random.default_rng(0)
data = ((rng.standard_normal(65536) + 1j * rng.standard_normal(65536)) / np.sqrt(2)).astype(np.complex64)
def run():
    tb = gr.top_block()
    src = blocks.vector_source_c(data.tolist(), True)
    head = blocks.head(gr.sizeof_gr_complex, int(n))
    fad = channels.fading_model(8, fd / fs, True, k, 1)
    # 4-tap Lagrange fractional delay (mu = 0.37) as the FIR taps, the resampler for the drifting delay
    mu = 0.37
    taps = [-mu * (mu - 1) * (mu - 2) / 6, (mu + 1) * (mu - 1) * (mu - 2) / 2, -(mu + 1) * mu * (mu - 2) / 2,
            (mu + 1) * mu * (mu - 1) / 6]
    chan = channels.channel_model(noise_v, f_off, eps, taps, 2, False)
    sink = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(src, head, fad, chan, sink)
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    tb.run()
    r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), w1 - w0
run_best = [run() for _ in range(int(sys.argv[8]))]
print(json.dumps({"cpu_s": min(r[0] for r in run_best), "wall_s": min(r[1] for r in run_best),
                  "gnuradio": gr.version()}))
"""


def _gnuradio_peer(n: int, repeats: int) -> dict[str, Any]:
    if not Path(GR_PYTHON).exists():
        return {"skipped": "apt install gnuradio"}
    check = subprocess.run([GR_PYTHON, "-c", "import gnuradio.channels"], capture_output=True, text=True)
    if check.returncode != 0:
        return {"skipped": "apt install gnuradio"}
    c = CHAIN
    k = 10 ** (c["k_factor_db"] / 10)
    noise_v = math.sqrt(1.0 / 10 ** (c["snr_db"] / 10))
    eps = 1.0 + c["delay_rate_s_per_s"]
    args = [n, FS_HZ, c["max_doppler_hz"], k, c["doppler_hz"] / FS_HZ, noise_v, eps, repeats]
    proc = subprocess.run([GR_PYTHON, "-c", _GR_SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"skipped": f"GNU Radio run failed: {proc.stderr.strip()[-300:]}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"msps": n / res["cpu_s"] / 1e6, "msps_wall": n / res["wall_s"] / 1e6, "samples": n,
            "version": res["gnuradio"], "blocks": "fading_model(N=8, LOS) + channel_model (4 taps, resampler)"}


def bench_channel(quick: bool = False) -> dict[str, Any]:
    """Full chain (Doppler + rate, drifting fractional delay, Rician K = 10 dB, AWGN) at 10 MS/s."""
    from sagin_hil.phy.channel.emulator import ChannelEmulator, ChannelParams

    n = 2_000_000 if quick else 10_000_000
    repeats = 2 if quick else 5
    rng = np.random.default_rng(0)
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)
    em = ChannelEmulator(FS_HZ, 25e9, ChannelParams(**CHAIN), seed=0)
    cpu, wall = _cpu_and_wall(lambda: em.process(x), repeats)
    ours = {"msps": n / cpu / 1e6, "msps_wall": n / wall / 1e6, "ns_per_sample": cpu / n * 1e9, "samples": n}

    n_np = n // 4
    cpu_np, wall_np = _cpu_and_wall(lambda: numpy_chain(x[:n_np], FS_HZ, rng), max(1, repeats - 1))
    peers: dict[str, dict[str, Any]] = {
        "numpy": {"msps": n_np / cpu_np / 1e6, "msps_wall": n_np / wall_np / 1e6, "samples": n_np}
    }
    peers["gnuradio"] = _gnuradio_peer(n, 1 if quick else 3)
    ratio = {p: ours["msps"] / f["msps"] for p, f in peers.items() if "msps" in f}
    entry = benchmark_entry(
        "full_chain", ours, peers, ratio,
        settings={"sample_rate_hz": FS_HZ, **CHAIN, "block_samples": n},
        target={"msps": 20.0},
        notes="msps = samples per CPU-second of one core (the GNU Radio figure counts all its threads); "
              "GNU Radio's channel_model has no Doppler rate, and its fading_model uses 8 sinusoids (ours 32)",
    )
    return {"benchmarks": [entry]}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(bench_channel(quick=True), indent=2))
