"""Sum rate vs UAV bandwidth and vs UAV power, proposed AO against the three baselines (paper 001 Fig. 5).

`run_sweeps(out_dir)` writes sweep_uav_bandwidth.png, sweep_uav_power.png and sweep.json; each point is
the mean over `n_seeds` user layouts, and `ordering_holds` says whether the proposed scheme is at least
as good as every baseline at every point of every layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.controllers.ao import AlternatingOptimizer, RelayScenario

__all__ = ["SCHEMES", "sweep", "run_sweeps"]

SCHEMES = {
    "proposed": ("bandwidth", "power", "position"),
    "fixed bandwidth": ("power", "position"),
    "fixed power": ("bandwidth", "position"),
    "fixed location": ("bandwidth", "power"),
}


def sweep(param: str, values: np.ndarray, n_seeds: int = 3, progress: Callable[[int, int], None] | None = None,
          **scenario: Any) -> dict[str, Any]:
    """Sum rate (Mbit/s) per scheme over `values` of RelayScenario field `param`; `progress(done, total)` is
    called after each AO run (seeds x values x schemes).

    Output
    ------
    {"param", "values", "mean": {scheme: [...]}, "per_seed": {scheme: [[...] per seed]}, "ordering_holds"}
    """
    per_seed = {name: np.zeros((n_seeds, len(values))) for name in SCHEMES}
    total, done = n_seeds * len(values) * len(SCHEMES), 0
    for s in range(n_seeds):
        for j, v in enumerate(values):
            scn = RelayScenario.random(seed=s, **{**scenario, param: float(v)})
            for name, optimize in SCHEMES.items():
                per_seed[name][s, j] = AlternatingOptimizer(scn, optimize).run().sum_rate_bps / 1e6
                done += 1
                if progress is not None:
                    progress(done, total)
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


def run_sweeps(out_dir: str | Path, n_seeds: int = 3,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Both sweeps, their plots and sweep.json in `out_dir`; `progress(done, total)` counts the AO runs of
    both sweeps together."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grids = {"uav_bandwidth": ("uav_bandwidth_hz", np.array([2, 4, 6, 8, 10, 14, 20]) * 1e6),
             "uav_power": ("uav_power_w", np.array([0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0]))}
    grand_total = sum(n_seeds * len(v) * len(SCHEMES) for _, v in grids.values())
    res: dict[str, Any] = {}
    offset = 0
    for key, (param, values) in grids.items():
        # the sweep counts its own runs; shift them so one bar covers both sweeps
        report = None if progress is None else (lambda d, _t, o=offset: progress(o + d, grand_total))
        res[key] = sweep(param, values, n_seeds, progress=report)
        offset += n_seeds * len(values) * len(SCHEMES)
    _plot(res["uav_bandwidth"], "UAV bandwidth B_U (MHz)", 1e6, out / "sweep_uav_bandwidth.png")
    _plot(res["uav_power"], "UAV power P_U (W)", 1.0, out / "sweep_uav_power.png")
    (out / "sweep.json").write_text(json.dumps(res, indent=2))
    return res
