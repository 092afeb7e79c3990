"""`sagin-hil compare`: runs and sweeps side by side, per controller and per mode.

A run folder (its summary.json) counts once; a sweep folder (sweep.json and points/) is pooled over all
of its finished points, mean and 95 % interval. For each input, controller and mode: tasks met (the
fraction meeting both deadline and quality floor), mean SCC, mean PSNR and mean delay. Written to the
output folder: compare.json, compare.md and plots/compare_<metric>.png (grouped bars, one group per input).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sagin_hil.flowgraphs.sweep import METRICS, summary_metrics
from sagin_hil.flowgraphs.sweep_report import mean_ci95

__all__ = ["compare_paths", "load_input", "table_rows", "CompareError"]


class CompareError(ValueError):
    """An input that is neither a run nor a sweep; the message names the path and what was expected."""


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: cannot read it as JSON ({exc})") from None


def _pool(metric_sets: list[dict[str, Any]], part: str) -> dict[str, dict[str, Any]]:
    """{name: {"n", "mean": {metric}, "ci95": {metric}}} over the points' metrics[part][name]."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for m in metric_sets:
        for name, values in m[part].items():
            by_name.setdefault(name, []).append(values)
    out = {}
    for name, ms in by_name.items():
        stats = {metric: mean_ci95([x.get(metric) for x in ms]) for metric in METRICS}
        out[name] = {"n": len(ms), "tasks": sum(x.get("tasks") or 0 for x in ms),
                     "mean": {k: v[0] for k, v in stats.items()}, "ci95": {k: v[1] for k, v in stats.items()}}
    return out


def load_input(path: str | Path) -> dict[str, Any]:
    """One input: {"path", "kind": "run" | "sweep", "points", "controllers": pooled, "modes": pooled}."""
    p = Path(path)
    if p.is_dir() and (p / "sweep.json").is_file():
        from sagin_hil.sweep_engine import read_point

        definition = _read(p / "sweep.json")
        records = [read_point(p / "points" / f"{pid}.json") for pid in definition.get("points", [])]
        metrics = [r["result"]["metrics"] for r in records if r is not None]
        if not metrics:
            raise CompareError(f"{p}: a sweep with no finished point yet; run `sagin-hil sweep` into it first")
        kind, extra = "sweep", {"fidelity": definition.get("fidelity"), "grid": definition.get("grid")}
    else:
        summary_path = p / "summary.json" if p.is_dir() else p
        if not summary_path.is_file():
            raise CompareError(f"{p}: neither a run folder (with summary.json) nor a sweep folder (with sweep.json); "
                               "give the folder `sagin-hil run` or `sagin-hil sweep` wrote")
        summary = _read(summary_path)
        if "rows" in summary and "points" in summary:  # a sweep's summary.json: read its folder
            return load_input(summary_path.parent)
        if "controllers" not in summary and "tasks" not in summary:
            raise CompareError(f"{summary_path}: not a run's summary.json (no 'controllers' or 'tasks')")
        metrics, kind, extra = [summary_metrics(summary)], "run", {"run_id": summary.get("run_id")}
    return {"path": str(p), "kind": kind, "points": len(metrics), **extra,
            "controllers": _pool(metrics, "controllers"), "modes": _pool(metrics, "modes")}


def _labels(paths: list[Path]) -> list[str]:
    """Folder names, made unique with their parent's name (then an index) where two are alike."""
    labels = [p.name if p.name != "summary.json" else p.parent.name for p in paths]
    for i, lab in enumerate(labels):
        if labels.count(lab) > 1:
            labels[i] = f"{paths[i].parent.name}/{lab}"
    return [lab if labels.count(lab) == 1 else f"{lab} ({i + 1})" for i, lab in enumerate(labels)]


def _fmt(mean: float | None, ci: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" if ci is None else f"{mean:.4g} ± {ci:.2g}"


def table_rows(result: dict[str, Any], part: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the side-by-side table for part "controllers" or "modes"."""
    header = ["input", "kind", "controller" if part == "controllers" else "mode", "points", "tasks",
              *METRICS.values()]
    rows = []
    for inp in result["inputs"]:
        for name, s in inp[part].items():
            rows.append([inp["label"], inp["kind"], name, str(s["n"]), str(s["tasks"]),
                         *(_fmt(s["mean"][m], s["ci95"][m]) for m in METRICS)])
    return header, rows


def _plots(out: Path, result: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    (out / "plots").mkdir(parents=True, exist_ok=True)
    inputs = result["inputs"]
    written = []
    for metric, axis in METRICS.items():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, part in zip(axes, ("controllers", "modes")):
            names = sorted({n for inp in inputs for n in inp[part]})
            width = 0.8 / max(1, len(names))
            for j, name in enumerate(names):
                x = np.arange(len(inputs)) + (j - (len(names) - 1) / 2) * width
                y = [inp[part].get(name, {}).get("mean", {}).get(metric) for inp in inputs]
                e = [inp[part].get(name, {}).get("ci95", {}).get(metric) or 0.0 for inp in inputs]
                y = [np.nan if v is None else v for v in y]
                ax.bar(x, y, width, yerr=e, capsize=3, label=name)
            ax.set_xticks(range(len(inputs)), [inp["label"] for inp in inputs], rotation=15, fontsize=8)
            ax.set_ylabel(axis)
            ax.set_title(f"per {part[:-1]}", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
            if names:
                ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"compare_{re.sub(r'[^A-Za-z0-9_]', '_', metric)}.png"
        fig.savefig(out / "plots" / name, dpi=110)
        plt.close(fig)
        written.append(f"plots/{name}")
    return written


def compare_paths(paths: list[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Load every input, write compare.json, compare.md and plots/ to out_dir; returns compare.json's content."""
    paths = [Path(p) for p in paths]
    if len(paths) < 1:
        raise CompareError("give at least one run or sweep folder to compare")
    inputs = [load_input(p) for p in paths]
    for inp, label in zip(inputs, _labels(paths)):
        inp["label"] = label
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"metrics": METRICS, "inputs": inputs}
    result["plots"] = _plots(out, result)
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    lines = ["# compare", "", "Runs count once; sweeps are pooled over their points (mean ± 95 % interval).", ""]
    for part in ("controllers", "modes"):
        header, rows = table_rows(result, part)
        lines += [f"## per {part[:-1]}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    (out / "compare.md").write_text("\n".join(lines))
    return result
