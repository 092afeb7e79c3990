"""`sagin-hil reproduce paper-000`: [P000]'s comparisons (Fig. 6-10) from the environment with the trained
policies, 95 % intervals over held-out seeds, and a few points re-run at sample level (docs/reproductions.md).

Every point is `point(policy, seeds, spec)`: a pure function of JSON values (the world's knobs in `spec`), run
on the sweep engine (sweep_engine.run_points: a local Dask cluster, or --scheduler): each point is kept in
OUT/points/ as it finishes, so an interrupted reproduction resumes where it stopped.

Two readings of [P000]'s Mode 1 (`mode1`): "mode1", the project's rate-adaptive JPEG 2000 (the controller sets
its bits per pixel), and "mode1-lossless", the whole image losslessly, as the paper describes its Mode 1 (a large
volume that does not scale); with the paper's 3.5 MB images (`n_pixels` = PAPER_IMAGE_PIXELS)
the second makes the mode choice bite (docs/reproductions.md; controllers.abstraction.world_knobs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.controllers.abstraction import DEFAULT_IMAGE_PIXELS, DEFAULT_MODES, world_knobs

__all__ = ["reproduce_paper_000", "point", "world_kwargs", "sample_level"]


def world_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """SaginWorld arguments from a point's knobs: min_elevation_deg and sat_power_w (the scenario), modes,
    weight_quality (xi_q), deadline_s and quality_min_db (fixed values or [lo, hi]), horizon_s, n_pixels,
    uav_offset_m."""
    kw: dict[str, Any] = {}
    if "min_elevation_deg" in spec or "sat_power_w" in spec:
        from sagin_hil.phy.channel.scenario import Scenario

        d = Scenario.default().to_dict()
        if "min_elevation_deg" in spec:
            d["min_elevation_deg"] = float(spec["min_elevation_deg"])
        if "sat_power_w" in spec:
            for s in d["satellites"]:
                s["tx_power_w"] = float(spec["sat_power_w"])
        kw["scenario"] = Scenario.from_dict(d)
    if "modes" in spec:
        kw["modes"] = tuple(spec["modes"])
    if "weight_quality" in spec:
        kw["weight_quality"] = float(spec["weight_quality"])
    for key, arg in (("deadline_s", "deadline_range_s"), ("quality_min_db", "quality_range_db")):
        if key in spec:
            v = spec[key]
            kw[arg] = (float(v), float(v)) if np.isscalar(v) else tuple(float(x) for x in v)
    if "horizon_s" in spec:
        kw["horizon_s"] = float(spec["horizon_s"])
    if "n_pixels" in spec:
        kw["n_pixels"] = int(spec["n_pixels"])
    if "uav_offset_m" in spec:
        kw["uav_offset_m"] = float(spec["uav_offset_m"])
    return kw


_POLICY_CACHE: dict[tuple[str, str | None], Any] = {}


def point(policy: str, seeds: list[int], spec: dict[str, Any], weights: str | None = None) -> dict[str, Any]:
    """SCC per task of `policy` ("dsac", "dsac-hover", "mappo", "greedy", "link-adaptation", "random") on
    `seeds` in the world `spec` describes (weights: a DSAC / MAPPO file, default the shipped one); mean and
    95 % interval over the seeds."""
    from sagin_hil.controllers.rl.evaluate import ci95, evaluate_policy
    from sagin_hil.controllers.rl.policy import load_policy

    hover = policy.endswith("-hover")
    name = policy.removesuffix("-hover")
    pol = None
    if name in ("dsac", "mappo"):
        if (name, weights) not in _POLICY_CACHE:
            _POLICY_CACHE[name, weights] = load_policy(name, weights)
        pol = _POLICY_CACHE[name, weights]
    x = evaluate_policy(name, seeds, world_kwargs(spec), hover=hover, policy=pol)
    lo, hi = ci95(x)
    return {"scc_mean": float(x.mean()), "scc_ci95": [lo, hi], "per_seed": [round(float(v), 5) for v in x]}


def _figures(quick: bool, mode1: str = "mode1") -> dict[str, dict[str, Any]]:
    """Each figure: its x knob, x values, and the series (label -> (policy, fixed knobs)); `mode1` plays Mode 1."""
    pick = (lambda full, fast: fast if quick else full)  # noqa: E731
    single = {m: ("dsac", {"modes": [m]}) for m in (mode1, *DEFAULT_MODES[1:])}
    return {
        "fig6_scc_vs_xi_q": {"knob": "weight_quality", "x": pick([0.1, 0.4, 0.7, 0.9], [0.1, 0.5, 0.9]),
                             "series": {"DSAC": ("dsac", {}), "MAPPO": ("mappo", {})}},
        "fig7_scc_vs_d_max": {"knob": "deadline_s", "x": pick([3.0, 5.0, 8.0, 11.0], [3.0, 11.0]),
                              "series": single, "fixed": {"quality_min_db": 10.0}},
        "fig8_scc_vs_q_min": {"knob": "quality_min_db", "x": pick([10.0, 20.0, 30.0, 38.0], [10.0, 30.0]),
                              "series": single, "fixed": {"deadline_s": 11.0}},
        "fig9_scc_vs_min_elevation": {
            "knob": "min_elevation_deg", "x": pick([30.0, 45.0, 60.0, 70.0], [40.0, 70.0]),
            "series": {"DSAC": ("dsac", {}), "MAPPO": ("mappo", {}), "DSAC & hovering UAVs": ("dsac-hover", {}),
                       "DSAC & Mode 3": ("dsac", {"modes": [mode1, "mode3_3"]})}},
        "fig10_scc_vs_p_s": {"knob": "sat_power_w", "x": pick([0.01, 0.05, 0.2, 1.0], [0.01, 1.0]),
                             "series": {"DSAC": ("dsac", {}),
                                        "DSAC without Mode 1": ("dsac", {"modes": ["mode3_1", "mode3_2", "mode3_3"]})}},
    }


def _plot(name: str, fig: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(5.2, 3.4))
    for label, pts in fig["series"].items():
        x = np.array(fig["x"], float)
        m = np.array([p["scc_mean"] for p in pts])
        lo = np.array([p["scc_ci95"][0] for p in pts])
        hi = np.array([p["scc_ci95"][1] for p in pts])
        ax.errorbar(x, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=label)
    ax.set_xlabel(fig["knob"])
    ax.set_ylabel("average SCC per task")
    ax.set_title(name.replace("_", " "), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def sample_level(algos: list[str], seeds: list[int], tasks: int, log: Callable[[str], None],
                 modes: list[str] | None = None, weights: dict[str, str] | None = None) -> dict[str, Any]:
    """`sagin-hil run sagin-000` with each controller on the same seeds (and `modes`, default the flowgraph's;
    weights: a policy file per learned controller, default the shipped ones): mean SCC per task over all tasks."""
    from sagin_hil.flowgraphs.config import load_flowgraph
    from sagin_hil.flowgraphs.runner import run_flowgraph

    out: dict[str, Any] = {}
    for algo in algos:
        scc, per_seed = [], []
        for s in seeds:
            fg = load_flowgraph("sagin-000").with_overrides(
                seed=s, sets=[f"tasks.count={tasks}", "controller.compare=[]", f"controller.algo={algo}",
                              *([f"controller.modes={json.dumps(modes)}"] if modes else []),
                              *([f"controller.options.weights={json.dumps(weights[algo])}"]
                                if algo in (weights or {}) else [])])
            t0 = time.perf_counter()
            summary = run_flowgraph(fg, report=False).summary
            w = [float(t["scc"]) for t in summary["tasks"]]
            scc += w
            per_seed.append(float(np.mean(w)))
            log(f"  sample level {algo} seed {s}: SCC per task {np.mean(w):.3f} ({time.perf_counter() - t0:.0f} s)")
        out[algo] = {"scc_mean": float(np.mean(scc)), "per_seed": per_seed, "tasks": len(scc)}
    return out


def reproduce_paper_000(out: str | Path, quick: bool = False, seeds: int | None = None, sample_level_runs: bool = True,
                        log: Callable[[str], None] = print, workers: int | None = None,
                        scheduler: str | None = None, mode1: str = "mode1", n_pixels: int | None = None,
                        weights: dict[str, str] | None = None, uav_offset_m: float = 0.0) -> dict[str, Any]:
    """Write out/paper-000.json and one plot per figure; returns the JSON's content. The environment points run
    on the sweep engine (workers: local processes, default one per core; scheduler: an existing cluster).
    mode1: the mode that plays [P000]'s Mode 1 (abstraction.MODE1_READINGS); n_pixels: every task image's pixels
    in the environment (default 512 x 512; the paper's: abstraction.PAPER_IMAGE_PIXELS); uav_offset_m: every
    UAV starts this far from its users' area (SaginWorld); weights: {"dsac" | "mappo": file} instead of the
    shipped policies. The sample-level runs keep the flowgraph's images and UAV deployment, so they are left
    out when n_pixels or uav_offset_m is given (the JSON says why)."""
    from sagin_hil.sweep_engine import run_points

    world = world_knobs(mode1, n_pixels, uav_offset_m)
    given = {k: str(v) for k, v in (weights or {}).items()}  # recorded as given: a stored run names no machine's path
    weights = {k: str(Path(v).resolve()) for k, v in given.items()}
    if set(weights) - {"dsac", "mappo"}:
        raise ValueError(f"weights for {sorted(set(weights) - {'dsac', 'mappo'})}: only dsac and mappo have weights")
    for k, v in weights.items():
        if not Path(v).is_file():
            raise ValueError(f"{k} weights {v} not found: give a .safetensors from `sagin-hil train {k}`")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = seeds or (4 if quick else 20)
    if n < 2:
        raise ValueError(f"seeds = {n}; a 95 % interval needs at least 2 held-out seeds (--seeds 2 or more)")
    held_out = list(range(n))
    # the policies on the environment's own episodes; the figures' many points on shorter ones
    base_policies = {"horizon_s": 100.0 if quick else 200.0, **world}
    base = {"horizon_s": 60.0 if quick else 100.0, **world}
    t0 = time.perf_counter()
    res: dict[str, Any] = {"paper": "000", "quick": quick, "held_out_seeds": held_out,
                           "world": {"policies_horizon_s": base_policies["horizon_s"],
                                     "figures_horizon_s": base["horizon_s"], "scenario": "default",
                                     "mode1": mode1, "n_pixels": int(n_pixels or DEFAULT_IMAGE_PIXELS),
                                     "uav_offset_m": float(uav_offset_m)},
                           "weights": {"dsac": given.get("dsac", "shipped"), "mappo": given.get("mappo", "shipped")}}
    policies = ("dsac", "mappo", "greedy", "random", "link-adaptation")
    figures = _figures(quick, mode1)

    def args(policy: str, spec: dict[str, Any]) -> dict[str, Any]:
        own = weights.get(policy.removesuffix("-hover"))
        return {"policy": policy, "seeds": held_out, "spec": spec, **({"weights": own} if own else {})}

    points = {f"policy-{p}": args(p, base_policies) for p in policies}
    for name, fig in figures.items():
        for k, (label, (policy, knobs)) in enumerate(fig["series"].items()):
            for i, x in enumerate(fig["x"]):
                points[f"{name}-{k}-{i}"] = args(policy, {**base, **fig.get("fixed", {}), **knobs, fig["knob"]: x})
    log(f"{len(points)} points on held-out seeds {held_out} (sweep engine; kept in {out / 'points'})")
    done = run_points("sagin_hil.flowgraphs.reproduce:point", points, out / "points", workers=workers,
                      scheduler=scheduler)
    if done.failed:
        raise RuntimeError(f"reproduce paper-000: points failed: {done.failed}")
    got = {pid: rec["result"] for pid, rec in done.results.items()}
    res["policies"] = {p: got[f"policy-{p}"] for p in policies}
    figs: dict[str, Any] = {}
    for name, fig in figures.items():
        series = {label: [dict(got[f"{name}-{k}-{i}"], x=x) for i, x in enumerate(fig["x"])]
                  for k, label in enumerate(fig["series"])}
        figs[name] = {"knob": fig["knob"], "x": fig["x"], "fixed": fig.get("fixed", {}), "series": series}
        _plot(name, figs[name], out / f"{name}.png")
    res["figures"] = figs
    unlike = [why for why, differs in ((f"its own images, not {n_pixels}-pixel ones (--image-pixels)",
                                        n_pixels is not None),
                                       ("its own UAV deployment, not one offset from the areas (--uav-offset-m)",
                                        uav_offset_m > 0)) if differs]
    if sample_level_runs and unlike:  # the flowgraph's world would not be the one the points ran in
        res["sample_level_skipped"] = f"the flowgraph keeps {' and '.join(unlike)}; run without them to check it"
    elif sample_level_runs:
        log("sample level (sagin-000)")
        s_seeds = held_out[:2] if quick else held_out[:3]
        modes = world.get("modes")  # the mode1 reading's, else the flowgraph's own
        res["sample_level"] = sample_level(["dsac", "mappo", "greedy"], s_seeds, 3 if quick else 8, log, modes,
                                           weights)
        res["sample_level_settings"] = {"flowgraph": "sagin-000", "seeds": s_seeds, "tasks": 3 if quick else 8,
                                        **({"modes": modes} if modes else {})}
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "paper-000.json").write_text(json.dumps(res, indent=1))
    return res

