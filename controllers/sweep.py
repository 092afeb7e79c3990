"""Sum rate vs UAV bandwidth and vs UAV power, proposed AO against the three baselines (paper 001 Fig. 5).

`run_sweeps(out_dir)` writes sweep_uav_bandwidth.png, sweep_uav_power.png and sweep.json; each point is
the mean over `n_seeds` user layouts, and `ordering_holds` says whether the proposed scheme is at least
as good as every baseline at every point of every layout. Every AO run (value x layout x scheme) is one
point on the sweep engine (sweep_engine.py: a local Dask cluster, or `scheduler`), kept in
out_dir/points as it finishes, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.controllers.ao import AlternatingOptimizer, RelayScenario

__all__ = ["SCHEMES", "sweep", "run_sweeps", "ao_point"]

SCHEMES = {
    "proposed": ("bandwidth", "power", "position"),
    "fixed bandwidth": ("power", "position"),
    "fixed power": ("bandwidth", "position"),
    "fixed location": ("bandwidth", "power"),
}


def ao_point(param: str, value: float, seed: int, scheme: str, scenario: dict[str, Any]) -> dict[str, float]:
    """One AO run: the sum rate (Mbit/s) of `scheme` on user layout `seed` with RelayScenario field `param`
    set to `value` (and the `scenario` fields)."""
    scn = RelayScenario.random(seed=seed, **{**scenario, param: float(value)})
    return {"sum_rate_mbps": AlternatingOptimizer(scn, SCHEMES[scheme]).run().sum_rate_bps / 1e6}


def _point_id(param: str, value: float, seed: int, scheme: str, scenario: dict[str, Any]) -> str:
    extra = hashlib.sha256(json.dumps(scenario, sort_keys=True).encode()).hexdigest()[:8] if scenario else ""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{param}-{float(value)!r}-s{seed}-{scheme}{'-' + extra if extra else ''}")


def sweep(param: str, values: np.ndarray, n_seeds: int = 3, progress: Callable[[int, int], None] | None = None,
          *, out_dir: str | Path | None = None, client=None, scheduler: str | None = None,
          workers: int | None = None, **scenario: Any) -> dict[str, Any]:
    """Sum rate (Mbit/s) per scheme over `values` of RelayScenario field `param`; `progress(done, total)` is
    called after each AO run (seeds x values x schemes). The runs go through the sweep engine: out_dir
    keeps them (None: a temporary folder), client / scheduler / workers choose the Dask cluster.

    Output
    ------
    {"param", "values", "mean": {scheme: [...]}, "per_seed": {scheme: [[...] per seed]}, "ordering_holds"}
    """
    from sagin_hil.sweep_engine import SweepError, run_points

    runs = {(s, j, name): _point_id(param, v, s, name, scenario)
            for s in range(n_seeds) for j, v in enumerate(values) for name in SCHEMES}
    points = {pid: {"param": param, "value": float(values[j]), "seed": s, "scheme": name, "scenario": scenario}
              for (s, j, name), pid in runs.items()}
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_points("sagin_hil.controllers.sweep:ao_point", points,
                             Path(out_dir) if out_dir is not None else Path(tmp), client=client,
                             scheduler=scheduler, workers=workers, cheap=True, progress=progress)
    if outcome.failed:
        pid, err = next(iter(outcome.failed.items()))
        raise SweepError(f"{len(outcome.failed)} AO run(s) failed, e.g. {pid}: {err}")
    per_seed = {name: np.zeros((n_seeds, len(values))) for name in SCHEMES}
    for (s, j, name), pid in runs.items():
        per_seed[name][s, j] = outcome.results[pid]["result"]["sum_rate_mbps"]
    prop = per_seed["proposed"]
    holds = all(bool(np.all(prop >= per_seed[n] * (1 - 1e-9))) for n in SCHEMES if n != "proposed")
    return {"param": param, "values": [float(v) for v in values],
            "mean": {n: r.mean(0).tolist() for n, r in per_seed.items()},
            "per_seed": {n: r.tolist() for n, r in per_seed.items()}, "ordering_holds": holds}


def _plot(res: dict[str, Any], xlabel: str, scale: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    x = np.array(res["values"]) / scale
    for (name, y), marker in zip(res["mean"].items(), "os^v"):
        ax.plot(x, y, marker=marker, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sum rate (Mbit/s, equivalent)")
    ax.set_title("5 clusters x (4 SemUsers + 4 ConUsers)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sweeps(out_dir: str | Path, n_seeds: int = 3, progress: Callable[[int, int], None] | None = None,
               scheduler: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """Both sweeps, their plots and sweep.json in `out_dir` (the AO runs in out_dir/points); `progress(done,
    total)` counts the AO runs of both sweeps together. One Dask cluster serves both."""
    from sagin_hil.sweep_engine import open_client

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grids = {"uav_bandwidth": ("uav_bandwidth_hz", np.array([2, 4, 6, 8, 10, 14, 20]) * 1e6),
             "uav_power": ("uav_power_w", np.array([0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0]))}
    grand_total = sum(n_seeds * len(v) * len(SCHEMES) for _, v in grids.values())
    res: dict[str, Any] = {}
    offset = 0
    client, cluster = open_client(scheduler, workers)
    try:
        for key, (param, values) in grids.items():
            # the sweep counts its own runs; shift them so one bar covers both sweeps
            report = None if progress is None else (lambda d, _t, o=offset: progress(o + d, grand_total))
            res[key] = sweep(param, values, n_seeds, progress=report, out_dir=out / "points", client=client)
            offset += n_seeds * len(values) * len(SCHEMES)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    _plot(res["uav_bandwidth"], "UAV bandwidth B_U (MHz)", 1e6, out / "sweep_uav_bandwidth.png")
    _plot(res["uav_power"], "UAV power P_U (W)", 1.0, out / "sweep_uav_power.png")
    (out / "sweep.json").write_text(json.dumps(res, indent=2))
    return res
