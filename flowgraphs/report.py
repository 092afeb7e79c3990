"""The report folder of a run: summary.json, tasks.csv, plots and an index.html that shows them."""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen needed; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["TaskRecord", "LinkTrace", "write_report", "TASK_COLUMNS"]

# Columns of tasks.csv and of the printed table (summary.json holds the same per task).
TASK_COLUMNS = (
    "task_id", "name", "route", "mode", "mcs", "compression_bpp", "bits", "air_time_s", "delay_s",
    "deadline_s", "psnr_db", "ssim", "quality_min_db", "scc", "met_deadline", "met_quality", "retransmissions",
)


@dataclass
class TaskRecord:
    """What happened to one task, end to end."""

    task_id: int
    name: str
    route: str  # "leo0->uav0->user0"
    mode: str
    mcs: str  # per hop, "qpsk-1/2 / 16qam-3/4"
    compression_bpp: float  # payload bits per pixel (JSCC: its header only, the image rides as symbols)
    bits: int  # payload bits of the encoded image
    air_time_s: float  # summed over hops and ARQ rounds
    delay_s: float  # end to end: compute + air + propagation + ARQ feedback
    deadline_s: float
    psnr_db: float
    ssim: float
    quality_min_db: float
    scc: float
    met_deadline: bool
    met_quality: bool
    retransmissions: int
    sent_image: np.ndarray | None = field(default=None, repr=False)
    received_image: np.ndarray | None = field(default=None, repr=False)
    predicted: dict[str, float] = field(default_factory=dict)  # the controller's predictions (delay, PSNR, rate)
    trail: dict[str, Any] = field(default_factory=dict)  # the decision: candidates, choice and why
    timeline: list[dict[str, Any]] = field(default_factory=list)  # encode, each hop (air, propagation, ARQ), decode
    hop_rate_bps: dict[str, float] = field(default_factory=dict)  # what each hop carried per second of air time
    hop_snr_db: dict[str, float] = field(default_factory=dict)  # each hop's measured Es/N0
    fallback: bool = False  # the plane's safe default was used (no controller answer)

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in TASK_COLUMNS}


@dataclass
class LinkTrace:
    """One hop over the run: the scenario's prediction over the pass and what the receiver measured."""

    link_id: str
    t_s: np.ndarray  # prediction time grid
    predicted_snr_db: np.ndarray
    doppler_hz: np.ndarray
    elevation_deg: np.ndarray | None = None
    measured_t_s: list[float] = field(default_factory=list)
    measured_snr_db: list[float] = field(default_factory=list)
    blocks: int = 0
    block_errors: int = 0
    bler_points: list[dict[str, Any]] = field(default_factory=list)  # per data send: mcs, snr_db, blocks, errors
    constellation: np.ndarray | None = field(default=None, repr=False)
    mcs_of_constellation: str = ""

    @property
    def bler(self) -> float:
        return self.block_errors / self.blocks if self.blocks else float("nan")

    @property
    def mean_snr_db(self) -> float:
        if not self.measured_snr_db:
            return float("nan")
        return float(10 * np.log10(np.mean(10 ** (np.asarray(self.measured_snr_db) / 10))))

    def summary(self) -> dict[str, Any]:
        return {
            "link": self.link_id,
            "mean_snr_db": _finite_or_none(self.mean_snr_db),
            "bler": _finite_or_none(self.bler),
            "blocks": self.blocks,
            "block_errors": self.block_errors,
            "reports": len(self.measured_snr_db),
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return _finite_or_none(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def clean_json(v: Any) -> Any:
    """`v` with numpy scalars made plain and non-finite floats made None (strict JSON), recursively."""
    if isinstance(v, dict):
        return {str(k): clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    if isinstance(v, np.ndarray):
        return clean_json(v.tolist())
    return _jsonable(v)


def build_summary(name: str, records: list[TaskRecord], links: list[LinkTrace], meta: dict[str, Any]) -> dict:
    tasks = [{**{k: _jsonable(v) for k, v in r.row().items()}, "predicted": r.predicted, "trail": r.trail,
              "timeline": r.timeline, "fallback": r.fallback} for r in records]
    n = max(len(records), 1)
    totals = {
        "tasks": len(records),
        "met_deadline": sum(r.met_deadline for r in records),
        "met_quality": sum(r.met_quality for r in records),
        "mean_scc": _finite_or_none(float(np.mean([r.scc for r in records]))) if records else None,
        "mean_psnr_db": _finite_or_none(float(np.mean([r.psnr_db for r in records]))) if records else None,
        "mean_delay_s": sum(r.delay_s for r in records) / n,
    }
    return {"name": name, **meta, "totals": totals, "tasks": tasks, "links": [lt.summary() for lt in links]}


def _plot_pass(links: list[LinkTrace], path: Path) -> None:
    """Es/N0 per hop kind (first hops, then later hops) and the first hops' Doppler, over scenario time."""
    first = [lt for lt in links if lt.link_id.split("->")[0] not in {x.link_id.split("->")[1] for x in links}]
    later = [lt for lt in links if lt not in first]
    rows = [(first, "Es/N0 (dB), first hop"), (later, "Es/N0 (dB), relay hop")] if later else [(first, "Es/N0 (dB)")]
    fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(9, 2.6 * (len(rows) + 1)), sharex=True)
    for ax, (group, label) in zip(axes, rows):
        for lt in group:
            (line,) = ax.plot(lt.t_s, lt.predicted_snr_db, lw=1.2, label=lt.link_id)
            if lt.measured_t_s:
                ax.plot(lt.measured_t_s, lt.measured_snr_db, "o", color=line.get_color(), ms=4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1 + len(group) // 8)
    axes[0].set_title("Link quality over the pass: predicted by the link budget (lines), measured by the receivers (dots)",
                      fontsize=9)
    ax = axes[-1]
    for lt in first:
        ax.plot(lt.t_s, np.asarray(lt.doppler_hz) / 1e3, label=lt.link_id)
    ax.set_ylabel("Doppler (kHz), first hop")
    ax.set_xlabel("scenario time (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_constellations(links: list[LinkTrace], path: Path, max_points: int) -> None:
    shown = [lt for lt in links if lt.constellation is not None and len(lt.constellation)]
    if not shown:
        return
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, lt in zip(axes.flat, shown):
        pts = lt.constellation[:max_points]
        ax.plot(pts.real, pts.imag, ".", ms=1.5, alpha=0.5)
        lim = 1.6 * max(1.0, float(np.percentile(np.abs(pts), 99)) / 1.2)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_title(f"{lt.link_id}\n{lt.mcs_of_constellation}, mean Es/N0 {lt.mean_snr_db:.1f} dB", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_images(records: list[TaskRecord], path: Path) -> None:
    shown = [r for r in records if r.sent_image is not None]
    if not shown:
        return
    fig, axes = plt.subplots(2, len(shown), figsize=(2.2 * len(shown), 4.8), squeeze=False)
    for i, r in enumerate(shown):
        for row, (img, label) in enumerate(((r.sent_image, r.name), (r.received_image, f"{r.psnr_db:.1f} dB"))):
            ax = axes[row][i]
            ax.axis("off")
            if img is None:
                ax.text(0.5, 0.5, "lost", ha="center", va="center")
            else:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(("sent: " if row == 0 else "received: ") + label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_tasks(records: list[TaskRecord], path: Path) -> None:
    if not records:
        return
    ids = [r.task_id for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].bar(ids, [r.delay_s for r in records], color=["tab:green" if r.met_deadline else "tab:red" for r in records])
    axes[0].plot(ids, [r.deadline_s for r in records], "k_", ms=20, mew=2, label="deadline D_max")
    axes[0].set_xlabel("task")
    axes[0].set_ylabel("end-to-end delay (s)")
    axes[0].legend(fontsize=8)
    axes[1].bar(ids, [r.psnr_db for r in records], color=["tab:green" if r.met_quality else "tab:red" for r in records])
    axes[1].plot(ids, [r.quality_min_db for r in records], "k_", ms=20, mew=2, label="floor Q_min")
    axes[1].set_xlabel("task")
    axes[1].set_ylabel("PSNR (dB)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _html(summary: dict[str, Any], plots: list[tuple[str, str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in TASK_COLUMNS)
    rows = []
    for t in summary["tasks"]:
        cells = []
        for c in TASK_COLUMNS:
            v = t[c]
            text = f"{v:.3g}" if isinstance(v, float) else ("-" if v is None else str(v))
            cls = ' class="bad"' if v is False else (' class="good"' if v is True else "")
            cells.append(f"<td{cls}>{esc(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    links = "".join(
        f"<tr><td>{esc(lk['link'])}</td><td>{_num(lk['mean_snr_db'], '.2f')}</td>"
        f"<td>{_num(lk['bler'], '.3g')}</td><td>{lk['blocks']}</td></tr>"
        for lk in summary["links"]
    )
    tot = summary["totals"]
    figs = "".join(f'<figure><img src="{esc(f)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>' for f, c in plots)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>sagin-hil: {esc(summary['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.8em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
td.good {{ color: #1a7f37; }} td.bad {{ color: #cf222e; font-weight: bold; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
code {{ background: #f5f5f5; padding: 0 0.2em; }}
</style></head><body>
<h1>sagin-hil run: {esc(summary['name'])}</h1>
<p>{esc(summary.get('description', ''))}</p>
<p>Flowgraph <code>{esc(str(summary.get('flowgraph', '')))}</code>, started {esc(str(summary.get('started', '')))},
took {summary.get('wall_time_s', 0):.1f} s. {tot['tasks']} tasks: {tot['met_deadline']} met their deadline,
{tot['met_quality']} their quality floor; mean SCC {_num(tot['mean_scc'], '.3f')}.</p>
<h2>Tasks</h2><div class="scroll"><table><tr>{head}</tr>{''.join(rows)}</table></div>
<h2>Links</h2><table><tr><th>link</th><th>mean measured Es/N0 (dB)</th><th>BLER</th><th>code blocks</th></tr>{links}</table>
<h2>Plots</h2>{figs}
<p>Files: <a href="summary.json">summary.json</a>, <a href="tasks.csv">tasks.csv</a>.</p>
</body></html>
"""


def write_report(
    out_dir: Path,
    summary: dict[str, Any],
    records: list[TaskRecord],
    links: list[LinkTrace],
    max_constellation_points: int = 4000,
) -> Path:
    """Write the whole report folder; returns the path of index.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(clean_json(summary), indent=2))
    with open(out_dir / "tasks.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TASK_COLUMNS)
        writer.writeheader()
        for t in summary["tasks"]:
            writer.writerow({c: t[c] for c in TASK_COLUMNS})
    plots = []
    _plot_constellations(links, out_dir / "constellations.png", max_constellation_points)
    if (out_dir / "constellations.png").exists():
        plots.append(("constellations.png", "Received constellation per hop (after synchronisation)"))
    _plot_pass(links, out_dir / "pass.png")
    plots.append(("pass.png", "Es/N0 (predicted line, measured dots) and Doppler over the pass"))
    _plot_tasks(records, out_dir / "tasks.png")
    if records:
        plots.append(("tasks.png", "Per task: delay against deadline, PSNR against floor (red: missed)"))
    _plot_images(records, out_dir / "images.png")
    if (out_dir / "images.png").exists():
        plots.append(("images.png", "Sent (top) and received (bottom) images"))
    index = out_dir / "index.html"
    index.write_text(_html(summary, plots))
    return index
