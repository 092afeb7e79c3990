"""Flowgraph sweeps: a grid of `--set` overrides x seeds, each point one task on the sweep engine.

    sagin-hil sweep sagin-000 --grid tasks.rate_hz=0.05,0.1 --grid controller.algo=greedy,random --seeds 3

A point is the flowgraph with one value of every grid key set (as `sagin-hil run --set key=value` sets it)
and one seed; its id hashes the resolved flowgraph and the fidelity, so a re-run, or another sweep over
the same points, finds it done. `run_point(flowgraph, seed)` is the pure function a point runs: no global
state, the result returned, a fresh run id every call. Seeds are the flowgraph's seed, seed + 1, ...

Sweep folder: points/<id>.json (one per finished point, written as it finishes), sweep.json (the grid,
seeds and point ids), summary.json, summary.md and plots/ (flowgraphs/sweep_report.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sagin_hil.flowgraphs.config import Flowgraph, FlowgraphError

__all__ = ["parse_grid", "sweep_points", "run_point", "run_sweep", "summary_metrics", "task_metrics", "METRICS",
           "FIDELITIES"]

FIDELITIES = ("sample", "abstraction")
Fidelity = Literal["sample", "abstraction"]
# what every run and sweep is compared on: name -> axis label
METRICS = {"met_fraction": "tasks met (deadline and floor), fraction", "mean_scc": "mean SCC",
           "mean_psnr_db": "mean PSNR (dB)", "mean_delay_s": "mean delay (s)"}


def _split_values(text: str) -> list[str]:
    """v1,v2,... split on the commas outside brackets and quotes, so a list value ([a, b]) stays whole."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """["key=v1,v2", ...] -> {key: [v1, v2]} in the order given; errors name the item and the fix."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FlowgraphError(f"--grid {item!r}: give key=v1,v2,..., e.g. --grid tasks.rate_hz=0.05,0.1")
        values = _split_values(text)
        if any(v == "" for v in values):
            raise FlowgraphError(f"--grid {item!r}: an empty value; give key=v1,v2,... with no empty entries")
        if key in grid:
            raise FlowgraphError(f"--grid {key} is given twice; give all its values in one --grid {key}=v1,v2")
        if len(set(values)) != len(values):
            raise FlowgraphError(f"--grid {item!r}: a value is repeated; give each value once")
        grid[key] = values
    return grid


def _point_id(fg: Flowgraph, fidelity: str) -> str:
    """Hash of everything that decides the point's result: the resolved flowgraph (seed included) and fidelity."""
    text = json.dumps({"flowgraph": fg.model_dump(mode="json"), "fidelity": fidelity}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sweep_points(fg: Flowgraph, grid: dict[str, list[str]], seeds: int, fidelity: Fidelity = "sample",
                 sets: list[str] | None = None) -> list[dict[str, Any]]:
    """Every grid assignment x seed: [{"id", "params": {key: value text}, "seed", "flowgraph"}], each
    flowgraph validated here, so a bad grid value fails before anything runs (naming the key and value).
    Sweeping controller.algo runs that controller alone at each point (controller.compare = [])."""
    if seeds < 1:
        raise FlowgraphError(f"--seeds {seeds}: give at least 1")
    if fidelity not in FIDELITIES:
        raise FlowgraphError(f"--fidelity {fidelity!r}: choose one of {', '.join(FIDELITIES)}")
    points, seen = [], set()
    keys = list(grid)
    fixed = list(sets or [])  # `--set` items: every point
    # a swept controller.algo is the point's one controller: the flowgraph's compare list would repeat them
    if "controller.algo" in grid and "controller.compare" not in grid:
        fixed.append("controller.compare=[]")
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values))
        for i in range(seeds):
            seed = fg.seed + i
            point_fg = fg.with_overrides(sets=fixed + [f"{k}={v}" for k, v in params.items()], seed=seed)
            pid = _point_id(point_fg, fidelity)
            if pid in seen:  # two spellings of one value (0.1 and 1e-1): one point
                continue
            seen.add(pid)
            args = " ".join(f"--set '{x}'" for x in [*fixed, *(f"{k}={v}" for k, v in params.items())])
            points.append({"id": pid, "params": params, "seed": seed, "flowgraph": point_fg,
                           "reproduce": f"sagin-hil run {_source_arg(fg)} --seed {seed} {args}".strip()})
    return points


def _mean(xs: list[float]) -> float | None:
    xs = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    return sum(xs) / len(xs) if xs else None


def task_metrics(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and means over per-task rows (mode, delay_s, psnr_db, scc, met_deadline, met_quality); delay
    and PSNR are averaged over the tasks that have one (finite)."""
    n = len(tasks)
    both = sum(bool(t["met_deadline"] and t["met_quality"]) for t in tasks)
    return {"tasks": n, "met_deadline": sum(bool(t["met_deadline"]) for t in tasks),
            "met_quality": sum(bool(t["met_quality"]) for t in tasks), "met_both": both,
            "met_fraction": both / n if n else None, "mean_scc": _mean([t["scc"] for t in tasks]),
            "mean_psnr_db": _mean([t["psnr_db"] for t in tasks]), "mean_delay_s": _mean([t["delay_s"] for t in tasks])}


def _by_mode(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    modes = sorted({t["mode"] for t in tasks if t.get("mode")})
    return {m: task_metrics([t for t in tasks if t.get("mode") == m]) for m in modes}


def summary_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """What a run is compared on, from a sample-level summary.json or an abstraction rollout:
    {"controller": the flowgraph's own, "controllers": {algo: metrics}, "modes": {mode: metrics of the
    flowgraph's controller's tasks}}; metrics: tasks, met_deadline, met_quality, met_both, met_fraction,
    mean_scc, mean_psnr_db, mean_delay_s (and the sum rates of a semantic-relay run)."""
    main = summary.get("controller")
    if summary.get("fidelity") == "abstraction":
        ctl = {a: {**task_metrics(c["tasks"]), "rejected_plans": c["rejected_plans"]}
               for a, c in summary["controllers"].items()}
        return {"controller": main, "controllers": ctl, "modes": _by_mode(summary["controllers"][main]["tasks"])}
    ctl = {}
    for algo, m in (summary.get("controllers") or {}).items():
        keep = {k: v for k, v in m.items() if isinstance(v, (int, float)) or v is None}
        keep["met_fraction"] = m["met_both"] / m["tasks"] if m.get("tasks") else None
        ctl[algo] = keep
    if not ctl:  # a summary from before per-controller results: its totals are the controller's
        ctl[main or "controller"] = task_metrics(summary.get("tasks", []))
    return {"controller": main or next(iter(ctl)), "controllers": ctl, "modes": _by_mode(summary.get("tasks", []))}


def run_point(fg: Flowgraph, seed: int | None = None, fidelity: Fidelity = "sample") -> dict[str, Any]:
    """One point, pure: `fg` at `seed` (None: its own), at sample level (the runner, no report folder) or
    in the link abstraction (flowgraphs/rollout.py). Returns {"run_id", "seed", "fidelity", "metrics"
    (summary_metrics), "aborted"}; nothing is written and no global state is touched."""
    from sagin_hil.flowgraphs.runner import new_run_id, run_flowgraph

    if seed is not None:
        fg = fg.with_overrides(seed=seed)
    run_id = new_run_id(fg.name)
    if fidelity == "abstraction":
        from sagin_hil.flowgraphs.rollout import rollout_flowgraph

        summary, aborted = rollout_flowgraph(fg), None
    elif fidelity == "sample":
        res = run_flowgraph(fg, out_dir=Path("."), run_id=run_id, report=False)
        summary, aborted = res.summary, res.aborted
    else:
        raise FlowgraphError(f"fidelity {fidelity!r}: choose one of {', '.join(FIDELITIES)}")
    return {"run_id": run_id, "seed": fg.seed, "fidelity": fidelity, "metrics": summary_metrics(summary),
            "aborted": aborted}


def _source_arg(fg: Flowgraph) -> str:
    """What `sagin-hil run` takes to load `fg` again: its file, or a shipped flowgraph's name."""
    source = fg.source.split(" with ")[0]
    return source if not source.startswith("<") else source.strip("<>").split()[-1].removesuffix(".toml")


def run_sweep(fg: Flowgraph, grid: dict[str, list[str]], seeds: int, out_dir: str | Path,
              fidelity: Fidelity = "sample", sets: list[str] | None = None, scheduler: str | None = None,
              workers: int | None = None, client=None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run every point (grid x seeds, `sets` at all of them) on the sweep engine, then write the summary;
    returns summary.json's content. Points already in out_dir/points are not run again; failures are in
    summary["failed"]. client: an open dask Client (else scheduler, else a local cluster of `workers`)."""
    from sagin_hil.sweep_engine import run_points
    from sagin_hil.flowgraphs.sweep_report import write_summary

    out = Path(out_dir)
    points = sweep_points(fg, grid, seeds, fidelity, sets)
    definition = {"name": fg.name, "flowgraph": fg.source, "fidelity": fidelity, "grid": grid, "sets": sets or [],
                  "seeds": sorted({p["seed"] for p in points}), "points": [p["id"] for p in points]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(definition, indent=2))
    meta = {p["id"]: {"params": p["params"], "seed": p["seed"], "reproduce": p["reproduce"]} for p in points}
    started = time.perf_counter()
    outcome = run_points("sagin_hil.flowgraphs.sweep:run_point",
                         {p["id"]: {"fg": p["flowgraph"], "fidelity": fidelity} for p in points}, out / "points",
                         meta=meta, scheduler=scheduler, client=client, workers=workers,
                         cheap=fidelity == "abstraction", progress=progress)
    engine = {"workers": outcome.workers, "batch_size": outcome.batch_size, "ran": outcome.ran,
              "skipped": outcome.skipped, "wall_s": time.perf_counter() - started}
    failed = {pid: {**meta[pid], "error": err} for pid, err in outcome.failed.items()}
    return write_summary(out, definition, [outcome.results[p["id"]] for p in points if p["id"] in outcome.results],
                         failed, engine)
