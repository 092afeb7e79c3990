"""A sweep's summary: every metric per grid point and controller, mean and 95 % interval over seeds.

write_summary(out_dir, ...) writes summary.json (rows: grid values, controller, seeds, mean and ci95 of
each metric; per-mode rows; failed points), summary.md (the table) and plots/<metric>_vs_<key>.png: the
metric against each swept key, one line per controller (and per value of the other swept keys, e.g. one
per controller.algo or controller.modes value when those are swept), the 95 % interval as error bars.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from sagin_hil.flowgraphs.sweep import METRICS

__all__ = ["write_summary", "mean_ci95", "summary_table_rows"]

EXTRA_METRICS = {"sum_rate_bps": "sum rate (bit/s)"}  # present in semantic-relay runs only


def mean_ci95(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and the half-width of its 95 % interval (Student t over the seeds; None from one seed)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    from scipy.stats import t

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return mean, float(t.ppf(0.975, len(xs) - 1) * sd / math.sqrt(len(xs)))


def _metric_names(records: list[dict[str, Any]]) -> dict[str, str]:
    names = dict(METRICS)
    for key, label in EXTRA_METRICS.items():
        if any(key in c for r in records for c in r["result"]["metrics"]["controllers"].values()):
            names[key] = label
    return names


def _aggregate(records: list[dict[str, Any]], keys: list[str], part: str, names: dict[str, str]) -> list[dict]:
    """Rows over seeds: per grid assignment and controller (part "controllers") or mode ("modes")."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        params = r["meta"]["params"]
        for name, m in r["result"]["metrics"][part].items():
            groups.setdefault((tuple(params[k] for k in keys), name), []).append(m)
    rows = []
    for (values, name), ms in groups.items():
        row = {"params": dict(zip(keys, values)), "controller" if part == "controllers" else "mode": name,
               "seeds": len(ms), "mean": {}, "ci95": {}}
        for metric in names:
            row["mean"][metric], row["ci95"][metric] = mean_ci95([m.get(metric) for m in ms])
        rows.append(row)
    return rows


def _fmt(mean: float | None, ci: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" if ci is None else f"{mean:.4g} ± {ci:.2g}"


def summary_table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-controller table (also what the CLI prints)."""
    keys = list(summary["grid"])
    names = summary["metrics"]
    header = [*keys, "controller", "seeds", *names.values()]
    rows = [[*(r["params"][k] for k in keys), r["controller"], str(r["seeds"]),
             *(_fmt(r["mean"][m], r["ci95"][m]) for m in names)] for r in summary["rows"]]
    return header, rows


def _markdown(summary: dict[str, Any]) -> str:
    header, rows = summary_table_rows(summary)
    lines = [f"# sweep {summary['name']} ({summary['fidelity']} level)", "",
             f"{len(summary['points'])} points; mean ± 95 % interval over seeds {summary['seeds']}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if summary["failed"]:
        lines += ["", "## failed points", ""]
        lines += [f"- {f['params']} seed {f['seed']}: {f['error']}" for f in summary["failed"].values()]
    return "\n".join(lines) + "\n"


def _numeric(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _plots(out: Path, summary: dict[str, Any]) -> list[str]:
    """metric vs each swept key; lines: controller x the other swept keys' values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, rows, names = summary["grid"], summary["rows"], summary["metrics"]
    written = []
    (out / "plots").mkdir(exist_ok=True)
    for key, values in grid.items():
        xs = _numeric(values)
        pos = {v: (xs[i] if xs else i) for i, v in enumerate(values)}
        others = [k for k in grid if k not in (key, "controller.algo")]  # the label names the controller
        series: dict[str, list[dict]] = {}
        for r in rows:
            label = ", ".join([r["controller"], *(f"{k}={r['params'][k]}" for k in others)])
            series.setdefault(label, []).append(r)
        for metric, axis in names.items():
            fig, ax = plt.subplots(figsize=(6, 4))
            for label, rs in series.items():
                rs = sorted(rs, key=lambda r: pos[r["params"][key]])
                pts = [(pos[r["params"][key]], r["mean"][metric], r["ci95"][metric] or 0.0) for r in rs
                       if r["mean"][metric] is not None]
                if pts:
                    x, y, e = zip(*pts)
                    ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
            if not xs:
                ax.set_xticks(range(len(values)), values, rotation=20)
            ax.set_xlabel(key)
            ax.set_ylabel(axis)
            ax.set_title(f"{summary['name']}: {axis} vs {key}", fontsize=9)
            ax.grid(alpha=0.3)
            if series:
                ax.legend(fontsize=7)
            fig.tight_layout()
            name = f"{metric}_vs_{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.png"
            fig.savefig(out / "plots" / name, dpi=110)
            plt.close(fig)
            written.append(f"plots/{name}")
    return written


def write_summary(out_dir: str | Path, definition: dict[str, Any], records: list[dict[str, Any]],
                  failed: dict[str, dict[str, Any]], engine: dict[str, Any]) -> dict[str, Any]:
    """summary.json, summary.md and plots/ in out_dir from the finished points' records; returns the summary."""
    out = Path(out_dir)
    names = _metric_names(records)
    keys = list(definition["grid"])
    summary = {**definition, "metrics": names, "engine": engine, "finished": len(records), "failed": failed,
               "rows": _aggregate(records, keys, "controllers", names),
               "mode_rows": _aggregate(records, keys, "modes", names), "plots": []}
    if records:
        summary["plots"] = _plots(out, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(_markdown(summary))
    return summary
