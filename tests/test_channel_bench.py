"""`sagin-hil bench channel`: the common schema, real figures, and the numpy peer computes the same chain."""

import math

import numpy as np

from sagin_hil.benchmarks import validate_results
from sagin_hil.phy.channel.bench import CHAIN, FS_HZ, bench_channel, numpy_chain


def test_bench_channel_quick_schema_and_figures():
    res = validate_results(bench_channel(quick=True))
    (entry,) = res["benchmarks"]
    assert entry["name"] == "full_chain"
    ours = entry["ours"]
    assert ours["msps"] > 1.0 and ours["samples"] > 0
    assert entry["ratio"]["numpy"] == ours["msps"] / entry["peers"]["numpy"]["msps"]
    gr = entry["peers"]["gnuradio"]
    assert ("msps" in gr and entry["ratio"]["gnuradio"] > 0) or gr["skipped"].startswith(("apt install", "GNU Radio"))


def test_numpy_peer_is_the_same_chain():
    """The numpy peer delays, fades (unit mean power) and adds noise at the set SNR."""
    rng = np.random.default_rng(1)
    n = 200_000
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)
    y = numpy_chain(x, FS_HZ, rng)
    d = int(CHAIN["delay_s"] * FS_HZ)
    p_before = np.mean(np.abs(y[: d - 5]) ** 2)  # noise only
    p_after = np.mean(np.abs(y[d + 10 :]) ** 2)
    assert abs(10 * math.log10((p_after - p_before) / p_before) - CHAIN["snr_db"]) < 1.0
    assert y.dtype == np.complex64 and len(y) == n
