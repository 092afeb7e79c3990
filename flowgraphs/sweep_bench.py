"""`sagin-hil bench sweep`: the sweep engine's parallel efficiency and its cost per point.

The same points are run through a local cluster of 1 worker and of 2 workers (each warmed first: imports
and compiled kernels loaded, as in any sweep longer than its first point), in the same run:
- speedup_2_workers: wall time of sample-level points (the default flowgraph, 4 images: >= 5 s a point)
  on 1 worker over that on 2 workers;
- overhead_ms: what the engine adds per point on 1 worker, (sweep wall time - the points' own time) /
  points, for abstraction points batched as the engine chooses (and, in overhead_ms_sample, for the
  sample-level points): scheduling, transfer, writing each point's file, collecting results.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from sagin_hil.benchmarks import benchmark_entry, report_progress

__all__ = ["bench_sweep"]


def _warm() -> None:
    """On a worker: one tiny point, so imports and compiled kernels are loaded before timing."""
    from sagin_hil.flowgraphs.config import load_flowgraph
    from sagin_hil.flowgraphs.sweep import run_point

    fg = load_flowgraph(None).with_overrides(sets=["images.count=1", "images.size_px=64"])
    run_point(fg)
    run_point(fg, fidelity="abstraction")


def _points(fg, seeds: int, fidelity: str) -> dict[str, dict[str, Any]]:
    return {f"{fidelity}-{s}": {"fg": fg.with_overrides(seed=s), "fidelity": fidelity} for s in range(1, seeds + 1)}


def _timed(points: dict[str, dict[str, Any]], client, cheap: bool) -> dict[str, float]:
    from sagin_hil.sweep_engine import run_points

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = run_points("sagin_hil.flowgraphs.sweep:run_point", points, tmp, client=client, cheap=cheap)
        wall = time.perf_counter() - t0
    if out.failed:
        raise RuntimeError(f"bench sweep: points failed: {out.failed}")
    own = sum(r["wall_s"] for r in out.results.values())
    return {"wall_s": wall, "point_s": own / len(points), "overhead_ms": 1e3 * (wall - own) / len(points),
            "batch_size": out.batch_size}


def bench_sweep(quick: bool = False) -> dict[str, Any]:
    from sagin_hil.flowgraphs.config import load_flowgraph
    from sagin_hil.sweep_engine import open_client

    sample_fg = load_flowgraph(None).with_overrides(
        sets=["images.count=1", "images.size_px=128"] if quick else ["images.count=4"])
    n_sample, n_abstraction = (2, 40) if quick else (4, 200)
    abstraction_fg = load_flowgraph(None)
    results: dict[int, dict[str, dict[str, float]]] = {}
    load_before = os.getloadavg()[0]
    for step, n_workers in enumerate((1, 2)):
        report_progress(f"{n_workers} worker(s): starting and warming the cluster", 3 * step, 6)
        client, cluster = open_client(workers=n_workers)
        try:
            client.run(_warm)
            report_progress(f"{n_workers} worker(s): {n_sample} sample-level points", 3 * step + 1, 6)
            res = {"sample": _timed(_points(sample_fg, n_sample, "sample"), client, cheap=False)}
            report_progress(f"{n_workers} worker(s): {n_abstraction} abstraction points", 3 * step + 2, 6)
            res["abstraction"] = _timed(_points(abstraction_fg, n_abstraction, "abstraction"), client, cheap=True)
            results[n_workers] = res
        finally:
            client.close()
            cluster.close()
    report_progress("done", 6, 6)
    one, two = results[1], results[2]
    speedup = one["sample"]["wall_s"] / two["sample"]["wall_s"]
    ours = {
        "speedup_2_workers": speedup, "efficiency_2_workers": speedup / 2,
        "overhead_ms": one["abstraction"]["overhead_ms"], "overhead_ms_sample": one["sample"]["overhead_ms"],
        "sample_point_s": one["sample"]["point_s"], "abstraction_point_ms": 1e3 * one["abstraction"]["point_s"],
        "abstraction_batch_size": one["abstraction"]["batch_size"],
        "abstraction_speedup_2_workers": one["abstraction"]["wall_s"] / two["abstraction"]["wall_s"],
        "sample_wall_s_2_workers": two["sample"]["wall_s"],
    }
    peer = {"sample_wall_s": one["sample"]["wall_s"], "abstraction_wall_s": one["abstraction"]["wall_s"]}
    return {"benchmarks": [benchmark_entry(
        "sweep", ours, {"1 worker": peer}, {"1 worker": speedup},
        note=("Same points through a local Dask cluster of 1 and of 2 single-threaded worker processes, each "
              "warmed first. speedup_2_workers: sample-level sweep wall time, 1 worker over 2; overhead_ms: per "
              "abstraction point, (sweep wall time on 1 worker - the points' own time) / points, batched as the "
              "engine chooses. This machine's load average (other jobs share its cores) is in settings."),
        settings={"cpu_count": os.cpu_count(), "load_average_1min_before": load_before,
                  "load_average_1min_after": os.getloadavg()[0], "sample_points": n_sample,
                  "sample_flowgraph": "default, " + ("1 image of 128 px" if quick else "4 images of 256 px"),
                  "abstraction_points": n_abstraction, "abstraction_flowgraph": "default"},
    )]}
