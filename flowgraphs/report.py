"""The report folder of a run: summary.json, tasks.csv, plots and an index.html that shows them."""

from __future__ import annotations

import csv
import functools
import html
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen needed; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sagin_hil.controllers.scc import QUALITY_CEILING_DB  # noqa: E402

__all__ = ["TaskRecord", "LinkTrace", "write_report", "build_summary", "TASK_COLUMNS", "clean_json", "mean_psnr_db",
           "clopper_pearson", "aggregate_bler_points", "timeline_numbers"]

log = logging.getLogger(__name__)

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
    quality_profile: dict[str, Any] | None = None  # the image's own quality per mode the controller planned with

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in TASK_COLUMNS}

    @property
    def bit_exact(self) -> bool:
        """The image arrived bit exact (a lossless mode): its PSNR is inf dB."""
        return self.psnr_db == math.inf


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


def mean_psnr_db(records: list[TaskRecord]) -> float | None:
    """Mean PSNR over the tasks whose image did not arrive bit exact (inf dB: a lossless mode); None if none."""
    finite = [r.psnr_db for r in records if np.isfinite(r.psnr_db)]
    return float(np.mean(finite)) if finite else None


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


# --- measured BLER with confidence intervals --------------------------------------------------------------

BLER_BIN_DB = 1.0  # measured BLER points are pooled per MCS in Es/N0 bins of this width


def clopper_pearson(errors: int, blocks: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a block error rate from `errors` of `blocks`.

    0 errors give a lower bound of 0 and an upper bound of 1 - (alpha/2)^(1/blocks) (0.0362 for 100 blocks).
    """
    from scipy.stats import beta

    n, k = int(blocks), int(errors)
    if n <= 0:
        return 0.0, 1.0
    k = min(max(k, 0), n)
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


@functools.lru_cache(maxsize=1)
def _bler_table():
    """The shipped BLER table, or None when it cannot be read (the report then shows the points alone)."""
    try:
        from sagin_hil.calibration.bler import BlerTable

        return BlerTable.load()
    except Exception as exc:  # a report never fails for want of its reference curves
        log.warning("report: the BLER table could not be loaded (%s); measured BLER is shown without it", exc)
        return None


def _table_bler(mcs: str, snr_db: float | None) -> float | None:
    table = _bler_table()
    if table is None or snr_db is None or mcs not in getattr(table, "mcs_names", []):
        return None
    try:
        return float(table.bler(mcs, snr_db))
    except Exception:
        return None


def aggregate_bler_points(points: list[tuple[str, dict[str, Any]]], bin_db: float = BLER_BIN_DB) -> list[dict]:
    """Pool (link id, bler point) pairs per MCS and Es/N0 bin; each bin gets its blocks, errors, BLER, the
    Clopper-Pearson 95 % interval (`ci95`), the blocks-weighted mean Es/N0 and the shipped table's BLER there.

    Analog (JSCC) sends carry no code blocks and are skipped, as are points with no blocks. A point whose
    Es/N0 is unknown (not finite) lands in a bin of its MCS with `snr_db` None.
    """
    bins: dict[tuple[str, float | None], dict[str, Any]] = {}
    for link, p in points:
        if not isinstance(p, dict):
            continue
        mcs = str(p.get("mcs", ""))
        try:
            blocks, errors = int(p.get("blocks") or 0), int(p.get("errors") or 0)
        except (TypeError, ValueError):
            continue
        if not mcs or mcs == "analog" or blocks <= 0:
            continue
        snr = p.get("snr_db")
        snr = float(snr) if isinstance(snr, (int, float, np.number)) and np.isfinite(snr) else None
        key = (mcs, None if snr is None else round(snr / bin_db) * bin_db)
        b = bins.setdefault(key, {"blocks": 0, "errors": 0, "sends": 0, "snr_w": 0.0, "snr_n": 0, "links": set()})
        b["blocks"] += blocks
        b["errors"] += min(errors, blocks)
        b["sends"] += 1
        b["links"].add(str(link))
        if snr is not None:
            b["snr_w"] += snr * blocks
            b["snr_n"] += blocks
    out = []
    for (mcs, centre), b in sorted(bins.items(), key=lambda kv: (kv[0][0], math.inf if kv[0][1] is None else kv[0][1])):
        snr = b["snr_w"] / b["snr_n"] if b["snr_n"] else None
        lo, hi = clopper_pearson(b["errors"], b["blocks"])
        out.append({
            "mcs": mcs, "snr_bin_db": centre, "snr_db": snr, "blocks": b["blocks"], "errors": b["errors"],
            "bler": b["errors"] / b["blocks"], "ci95": [lo, hi], "table_bler": _table_bler(mcs, snr),
            "sends": b["sends"], "links": sorted(b["links"]),
        })
    return out


def _link_bler_points(lt: LinkTrace) -> list[dict]:
    try:
        return aggregate_bler_points([(lt.link_id, p) for p in (lt.bler_points or [])])
    except Exception as exc:
        log.warning("report: BLER points of %s could not be pooled: %s", lt.link_id, exc)
        return []


# --- the timeline of a task ----------------------------------------------------------------------------------

def _fnum(v: Any) -> float | None:
    """v as a finite float, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _above_ns(x: float) -> float:
    """x, or 0 for what is below a nanosecond (rounding residue of sums of times)."""
    return x if x >= 1e-9 else 0.0


def timeline_numbers(timeline: list[dict[str, Any]] | None, delay_s: float | None) -> dict[str, Any] | None:
    """Where a task's time went, from its timeline (encode, hops, decode) and its end-to-end delay.

    Returns None for an empty timeline, else: `arrival_s` (the decode's end minus the delay, or the first
    stage's start), `wait_s` (arrival to encode: planning, UAV flight), `encode_s`, `decode_s`, the sums over
    hops `air_s`, `propagation_s`, `arq_wait_s` (hop time neither on the air nor propagating: ARQ feedback),
    `retransmissions`, and `hops` (per hop: link, mcs, snr_db, start_s, duration_s, air_s, propagation_s,
    arq_wait_s, retransmissions). Missing keys count as zero.
    """
    if not timeline:
        return None
    stages = [s for s in timeline if isinstance(s, dict)]
    if not stages:
        return None
    starts = [_fnum(s.get("start_s")) for s in stages]
    ends = [st + (_fnum(s.get("duration_s")) or 0.0) for s in stages
            if (st := _fnum(s.get("start_s"))) is not None]
    first = min((x for x in starts if x is not None), default=None)
    end = max(ends, default=first)
    delay = _fnum(delay_s)
    if first is None:  # no start times: nothing to place the stages by
        arrival = None
    else:
        arrival = end - delay if delay is not None and end - delay <= first + 1e-12 else first
    out: dict[str, Any] = {"arrival_s": arrival, "end_s": end,
                           "wait_s": max(first - arrival, 0.0) if first is not None else 0.0, "encode_s": 0.0,
                           "decode_s": 0.0, "air_s": 0.0, "propagation_s": 0.0, "arq_wait_s": 0.0,
                           "retransmissions": 0, "hops": []}
    for s in stages:
        stage, dur = s.get("stage"), _fnum(s.get("duration_s")) or 0.0
        if stage in ("encode", "decode"):
            out[f"{stage}_s"] += dur
        elif stage == "hop":
            air = min(_fnum(s.get("air_s")) or 0.0, dur) if dur else (_fnum(s.get("air_s")) or 0.0)
            prop = min(_fnum(s.get("propagation_s")) or 0.0, max(dur - air, 0.0))
            retx = s.get("retransmissions")
            retx = int(retx) if isinstance(retx, (int, np.integer)) else 0
            hop = {"link": str(s.get("link", "?")), "mcs": s.get("mcs"), "snr_db": _fnum(s.get("snr_db")),
                   "start_s": _fnum(s.get("start_s")), "duration_s": dur, "air_s": air, "propagation_s": prop,
                   "arq_wait_s": _above_ns(dur - air - prop), "retransmissions": retx}
            out["hops"].append(hop)
            for k in ("air_s", "propagation_s", "arq_wait_s", "retransmissions"):
                out[k] += hop[k]
    return out


# --- summary.json ----------------------------------------------------------------------------------------------

def build_summary(name: str, records: list[TaskRecord], links: list[LinkTrace], meta: dict[str, Any]) -> dict:
    # strict JSON: a bit-exact image's PSNR (inf) is null there, with "bit_exact" true
    tasks = [{**{k: _jsonable(v) for k, v in r.row().items()}, "bit_exact": r.bit_exact,
              "predicted": r.predicted, "trail": r.trail, "timeline": r.timeline, "fallback": r.fallback,
              "quality_profile": r.quality_profile} for r in records]
    n = max(len(records), 1)
    totals = {
        "tasks": len(records),
        "met_deadline": sum(r.met_deadline for r in records),
        "met_quality": sum(r.met_quality for r in records),
        "mean_scc": _finite_or_none(float(np.mean([r.scc for r in records]))) if records else None,
        "mean_psnr_db": mean_psnr_db(records),
        "bit_exact": sum(r.bit_exact for r in records),
        "mean_delay_s": sum(r.delay_s for r in records) / n,
    }
    link_rows = []
    for lt in links:
        row = lt.summary()
        row["bler_ci95"] = list(clopper_pearson(lt.block_errors, lt.blocks)) if lt.blocks else None
        row["bler_points"] = _link_bler_points(lt)
        link_rows.append(row)
    try:
        pooled = aggregate_bler_points([(lt.link_id, p) for lt in links for p in (lt.bler_points or [])])
    except Exception as exc:
        log.warning("report: BLER points could not be pooled: %s", exc)
        pooled = []
    return {"name": name, **meta, "totals": totals, "tasks": tasks, "links": link_rows, "bler_points": pooled}


# --- plots ------------------------------------------------------------------------------------------------------

def _first_hops(links: list[LinkTrace]) -> list[LinkTrace]:
    receivers = {x.link_id.split("->")[-1] for x in links}
    return [lt for lt in links if lt.link_id.split("->")[0] not in receivers]


def _id_ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    ids = sorted(set(ids))
    parts, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(f"{ids[i]}" if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def _plot_pass(links: list[LinkTrace], path: Path, records: list[TaskRecord] | None = None) -> None:
    """Es/N0 per hop kind (first hops, then later hops) and the first hops' Doppler, over the satellite's whole
    visibility window (the first hops' prediction grid), with the receivers' measurements and, as dotted lines,
    the times tasks were carried."""
    links = [lt for lt in links if lt.t_s is not None and len(lt.t_s)]
    if not links:
        return
    first = _first_hops(links) or links
    later = [lt for lt in links if lt not in first]
    rows = [(first, "Es/N0 (dB), first hop"), (later, "Es/N0 (dB), relay hop")] if later else [(first, "Es/N0 (dB)")]
    # x range: the visibility window (the first hops' grids), widened to every measurement and task
    lo = min(float(np.min(lt.t_s)) for lt in first)
    hi = max(float(np.max(lt.t_s)) for lt in first)
    window = (lo, hi)
    carried: dict[float, list[int]] = {}
    for r in records or []:
        hops = [s for s in (r.timeline or []) if isinstance(s, dict) and s.get("stage") == "hop"]
        t = _fnum(hops[0].get("start_s")) if hops else None
        if t is not None:
            carried.setdefault(t, []).append(r.task_id)
    extra = [t for lt in links for t in lt.measured_t_s if _fnum(t) is not None] + list(carried)
    if extra:
        lo, hi = min(lo, min(extra)), max(hi, max(extra))
    pad = 0.02 * max(hi - lo, 1.0)
    fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(9, 2.6 * (len(rows) + 1)), sharex=True)
    for ax, (group, label) in zip(axes, rows):
        for lt in group:
            (line,) = ax.plot(lt.t_s, lt.predicted_snr_db, lw=1.2, label=lt.link_id)
            if lt.measured_t_s:
                ax.plot(lt.measured_t_s, lt.measured_snr_db, "o", color=line.get_color(), ms=4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1 + len(group) // 8)
    ax = axes[-1]
    for lt in first:
        ax.plot(lt.t_s, np.asarray(lt.doppler_hz) / 1e3, label=lt.link_id)
    ax.set_ylabel("Doppler (kHz), first hop")
    ax.set_xlabel("scenario time (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlim(lo - pad, hi + pad)
    # tasks carried: one dotted line per start time, labelled with the task ids above the first panel
    span = max(hi - lo, 1.0)
    merged: list[tuple[float, list[int]]] = []
    for t in sorted(carried):
        if merged and t - merged[-1][0] < 0.01 * span:
            merged[-1][1].extend(carried[t])
        else:
            merged.append((t, list(carried[t])))
    for t, ids in merged:
        for a in axes:
            a.axvline(t, color="0.45", ls=":", lw=0.9, zorder=0)
        axes[0].annotate(f"T{_id_ranges(ids)}", (t, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 2),
                         textcoords="offset points", ha="center", va="bottom", fontsize=6, color="0.3")
    title = (f"Link quality over the visibility window {window[0]:.0f}-{window[1]:.0f} s: predicted by the link "
             "budget (lines), measured (dots); dotted: tasks carried (T<id>)")
    fig.suptitle(title, fontsize=9)
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
        got = "bit exact" if r.bit_exact else f"{r.psnr_db:.1f} dB"
        for row, (img, label) in enumerate(((r.sent_image, r.name), (r.received_image, got))):
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
    shown = [min(r.psnr_db, QUALITY_CEILING_DB) for r in records]  # a bit-exact image at the SCC's ceiling, marked
    axes[1].bar(ids, shown, color=["tab:green" if r.met_quality else "tab:red" for r in records])
    for i, r in zip(ids, records):
        if r.bit_exact:
            axes[1].text(i, QUALITY_CEILING_DB, "exact", ha="center", va="bottom", fontsize=7)
    axes[1].plot(ids, [r.quality_min_db for r in records], "k_", ms=20, mew=2, label="floor Q_min")
    axes[1].set_xlabel("task")
    axes[1].set_ylabel("PSNR (dB)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TIMELINE_MAX_ROWS = 60  # tasks drawn in timeline.png (the HTML table lists them all)


def _timeline_segments(nums: dict[str, Any]) -> list[tuple[str, int, float, float]]:
    """(kind, hop index, start, end) in seconds since the task's arrival, in order."""
    a, segs = nums["arrival_s"], []
    t = nums["wait_s"]
    if t > 0:
        segs.append(("wait", 0, 0.0, t))
    enc = nums["encode_s"]
    segs.append(("encode", 0, t, t + enc))
    t += enc
    for i, hop in enumerate(nums["hops"]):
        start = hop["start_s"] - a if hop["start_s"] is not None and a is not None else t
        segs.append(("air", i, start, start + hop["air_s"]))
        segs.append(("prop", i, start + hop["air_s"], start + hop["duration_s"]))
        t = start + hop["duration_s"]
    segs.append(("decode", 0, t, t + nums["decode_s"]))
    return segs


def _stage_colour(kind: str, hop: int) -> Any:
    if kind == "air":
        return plt.get_cmap("Blues")(0.85 - 0.25 * (hop % 3))
    if kind == "prop":
        return plt.get_cmap("Oranges")(0.75 - 0.25 * (hop % 3))
    return {"wait": "0.8", "encode": "tab:purple", "decode": "tab:green"}[kind]


def _plot_timeline(records: list[TaskRecord], path: Path) -> None:
    """One row per task. Left: when each stage ended, on a log time axis from the task's arrival, against the
    deadline (|). Right: each stage's share of the end-to-end delay (linear, per task), so microsecond stages
    and second-long waits both stay readable."""
    rows = records[:TIMELINE_MAX_ROWS]
    if not rows:
        return
    nums = [timeline_numbers(r.timeline, r.delay_s) for r in rows]
    if not any(nums):
        return
    segs = [_timeline_segments(n) if n else [] for n in nums]
    ends = [e for s in segs for (_, _, a, e) in s if e > 0] + [r.deadline_s for r in rows if _fnum(r.deadline_s)]
    # the axis starts a little before the first stage (encode) ends, so that stage does not fill the decades
    # below it; what lies left of the axis is in the page's timeline table
    first_ends = [e for s in segs for (kind, _, a, e) in s if kind != "wait" and e > 0]
    xmin = 10 ** math.floor(math.log10(max(min(first_ends, default=1e-3) / 2, 1e-9)))
    xmax = 10 ** math.ceil(math.log10(max(ends, default=1.0) * 1.05))
    hops = max((len(n["hops"]) for n in nums if n), default=0)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 1.3 + 0.32 * len(rows)), sharey=True,
                                 gridspec_kw={"width_ratios": [3, 2]})
    labels = []
    for y, (r, n, s) in enumerate(zip(rows, nums, segs)):
        labels.append(f"{r.task_id} {r.name}"[:22])
        if not n:
            why = "not served" if (r.trail or {}).get("served") is False else "no timeline"
            ax.text(xmin * 1.5, y, why, va="center", fontsize=7, color="0.4")
            bx.text(0.01, y, why, va="center", fontsize=7, color="0.4")
        else:
            for kind, hop, a, e in s:
                if e <= xmin or e <= a:
                    continue
                left = max(a, xmin)
                ax.barh(y, e - left, left=left, height=0.6, color=_stage_colour(kind, hop), edgecolor="white", lw=0.4)
            total = sum(e - a for _, _, a, e in s if e > a)
            left = 0.0
            for kind, hop, a, e in s:
                if e <= a or total <= 0:
                    continue
                w = (e - a) / total
                bx.barh(y, w, left=left, height=0.6, color=_stage_colour(kind, hop), edgecolor="white", lw=0.4)
                left += w
            bx.text(1.01, y, _dur(_fnum(r.delay_s) if _fnum(r.delay_s) is not None else total), va="center",
                    fontsize=7)
        d = _fnum(r.deadline_s)
        if d is not None and d > 0:
            ax.plot([d], [y], marker="|", ms=12, mew=2, color="tab:green" if r.met_deadline else "tab:red")
    ax.set_xscale("log")
    ax.set_xlim(xmin, xmax)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time since the task arrived (s, log scale)")
    ax.grid(axis="x", alpha=0.3, lw=0.5)
    ax.set_title("when each stage ended; | deadline (green met, red missed)", fontsize=8)
    bx.set_xlim(0, 1.12)
    bx.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    bx.set_xticklabels(["0", "25", "50", "75", "100 %"])
    bx.set_xlabel("share of the end-to-end delay (delay at the right)")
    bx.set_title("where the time went", fontsize=8)
    from matplotlib.patches import Patch

    handles = [Patch(color=_stage_colour("wait", 0), label="waiting (planning, UAV flight)"),
               Patch(color=_stage_colour("encode", 0), label="encode")]
    for i in range(hops):
        handles.append(Patch(color=_stage_colour("air", i), label=f"hop {i + 1}: air time"))
        handles.append(Patch(color=_stage_colour("prop", i), label=f"hop {i + 1}: propagation + ARQ"))
    handles.append(Patch(color=_stage_colour("decode", 0), label="decode"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=7, frameon=False)
    n_legend_rows = -(-len(handles) // 4)
    fig.tight_layout(rect=(0, 0.045 * n_legend_rows * 8 / max(len(rows) + 4, 8), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_bler(points: list[dict[str, Any]], path: Path) -> None:
    """Measured BLER per MCS and Es/N0 bin with Clopper-Pearson 95 % intervals over the shipped table's curves
    of those MCSs; a bin with no errors is drawn as its upper bound (a downward triangle)."""
    pts = [p for p in points if _fnum(p.get("snr_db")) is not None and p.get("blocks")]
    if not pts:
        return
    table = _bler_table()
    mcss = sorted({p["mcs"] for p in pts}, key=lambda m: (table.mcs_names.index(m) if table is not None
                                                        and m in table.mcs_names else 99, m))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(mcss)}
    snrs = [p["snr_db"] for p in pts]
    x_lo, x_hi = min(snrs) - 1.0, max(snrs) + 1.0
    fig, ax = plt.subplots(figsize=(8, 4.2))
    floor = 1.0
    for m in mcss:
        c = colours[m]
        if table is not None and m in table.mcs_names:
            try:
                x_lo = min(x_lo, table.required_snr_db(m, 0.9) - 1.0)
                req = table.required_snr_db(m, 1e-3)
                if math.isfinite(req):
                    x_hi = max(x_hi, req + 1.0)
                grid = np.asarray(table.snr_db, dtype=float)
                curve = np.asarray(table.bler(m, grid), dtype=float)
                ax.plot(grid, np.where(curve > 0, curve, np.nan), color=c, lw=1.3, label=f"{m}: table")
            except Exception as exc:
                log.warning("report: table curve of %s not drawn: %s", m, exc)
        mine = [p for p in pts if p["mcs"] == m]
        hit = [p for p in mine if p["errors"] > 0]
        zero = [p for p in mine if p["errors"] == 0]
        if hit:
            y = np.array([p["bler"] for p in hit])
            lo = np.array([p["ci95"][0] for p in hit])
            hi = np.array([p["ci95"][1] for p in hit])
            ax.errorbar([p["snr_db"] for p in hit], y, yerr=[y - lo, hi - y], fmt="o", color=c, ms=5, capsize=3,
                        label=f"{m}: measured, 95 % CI")
            floor = min(floor, float(np.min(lo[lo > 0])) if np.any(lo > 0) else floor, float(np.min(y)))
        if zero:
            hi = np.array([p["ci95"][1] for p in zero])
            ax.plot([p["snr_db"] for p in zero], hi, "v", color=c, ms=7, mfc="none", mew=1.5,
                    label=f"{m}: 0 errors, 95 % upper bound")
            floor = min(floor, float(np.min(hi)))
        if len(pts) <= 30:
            for p in mine:
                y = p["bler"] if p["errors"] else p["ci95"][1]
                ax.annotate(f"{p['errors']}/{p['blocks']}", (p["snr_db"], y), xytext=(4, 4),
                            textcoords="offset points", fontsize=6, color=c)
    ax.set_yscale("log")
    ax.set_ylim(max(min(floor / 5, 1e-3), 1e-6), 1.5)
    ax.set_xlim(x_lo, x_hi)
    ax.set_xlabel(f"Es/N0 measured at the receiver (dB), pooled over links in {BLER_BIN_DB:g} dB bins")
    ax.set_ylabel("code-block error rate")
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.set_title("Measured BLER (data sends; probes and analog JSCC bursts excluded) on the AWGN BLER table",
                 fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: (mcss.index(labels[i].split(":")[0])
                                                      if labels[i].split(":")[0] in mcss else 99, i))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RATE_KEYS = (("predicted_sum_rate_bps", "predicted by the controller"),
             ("sum_rate_bps", "rate model at the measured SNRs"),
             ("phy_sum_rate_bps", "delivered by the PHY's MCS"))


def _plot_rates(controllers: dict[str, Any], path: Path) -> None:
    """The three sum rates per controller, grouped bars (Mbit/s, semantic-equivalent)."""
    rated = [(k, v) for k, v in controllers.items() if isinstance(v, dict) and _fnum(v.get("sum_rate_bps")) is not None]
    if not rated:
        return
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rated) + 2), 3.8))
    x = np.arange(len(rated))
    w = 0.26
    for j, (key, label) in enumerate(RATE_KEYS):
        vals = [(_fnum(v.get(key)) or 0.0) / 1e6 for _, v in rated]
        bars = ax.bar(x + (j - 1) * w, vals, w, label=label, color=("0.65", "tab:blue", "tab:orange")[j])
        for b, val in zip(bars, vals):
            ax.annotate(f"{val:.1f}", (b.get_x() + b.get_width() / 2, b.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", fontsize=6)
    ax.set_xticks(x)
    ax.set_xticklabels([k for k, _ in rated], fontsize=8)
    ax.set_ylabel("sum rate (Mbit/s, mean over frames)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Sum rate per controller, same tasks, same world", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_user_rates(controllers: dict[str, Any], path: Path) -> None:
    """Per user and frame: the controller's predicted rate against the measured ones, one colour per controller."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.8, 5.2))
    top, handles, any_point = 0.0, [], False
    for i, (algo, m) in enumerate(controllers.items()):
        frames = m.get("frames") if isinstance(m, dict) else None
        if not frames:
            continue
        c = plt.get_cmap("tab10")(i % 10)
        for f in frames:
            for user in (f.get("users") or {}).values():
                p = _fnum(user.get("predicted_rate_bps"))
                if p is None:
                    continue
                mk = "o" if user.get("kind") == "semantic" else "s"
                for key, filled in (("measured_rate_bps", True), ("phy_rate_bps", False)):
                    v = _fnum(user.get(key))
                    if v is None:
                        continue
                    ax.plot(p / 1e6, v / 1e6, mk, color=c, ms=5, alpha=0.75, mfc=c if filled else "none")
                    top, any_point = max(top, p / 1e6, v / 1e6), True
        handles.append(Line2D([], [], ls="", marker="o", color=c, label=algo))
    if not any_point:
        plt.close(fig)
        return
    lim = top * 1.08 or 1.0
    ax.plot([0, lim], [0, lim], "k--", lw=0.8)
    handles += [Line2D([], [], ls="--", color="k", lw=0.8, label="measured = predicted"),
                Line2D([], [], ls="", marker="o", color="0.3", label="filled: rate model at the measured SNR"),
                Line2D([], [], ls="", marker="o", color="0.3", mfc="none", label="hollow: delivered by the PHY"),
                Line2D([], [], ls="", marker="o", color="0.3", label="circle: SemUser"),
                Line2D([], [], ls="", marker="s", color="0.3", label="square: ConUser")]
    ax.set_xlim(-0.02 * lim, lim)
    ax.set_ylim(-0.02 * lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted rate (Mbit/s)")
    ax.set_ylabel("measured rate (Mbit/s)")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Per user and frame: predicted vs measured rate", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _plot_map(world: dict[str, Any], tasks: list[dict[str, Any]], path: Path) -> None:
    """Left: the satellites' ground tracks over the run (km) around the UAV area. Right: the UAV area (m):
    users, UAV paths, and for each task a line from its UAV to its user, coloured by mode, labelled with
    the satellite (and ISL) that served it."""
    fig, (ax_w, ax_l) = plt.subplots(1, 2, figsize=(13, 5.8), gridspec_kw={"width_ratios": [1, 1.25]})
    cmap = plt.get_cmap("tab10")
    for i, (sat, pts) in enumerate(sorted(world.get("leo_tracks", {}).items())):
        p = np.asarray(pts, float)
        ax_w.plot(p[:, 1] / 1e3, p[:, 2] / 1e3, color=cmap(i % 10), lw=1.6, label=sat)
        ax_w.annotate("", xy=p[-1, 1:] / 1e3, xytext=p[-2, 1:] / 1e3, arrowprops={"arrowstyle": "->", "color": cmap(i % 10)})
    area = np.asarray([v[:2] for v in world.get("users", {}).values()] or [[0.0, 0.0]], float)
    ax_w.scatter(area[:, 0] / 1e3, area[:, 1] / 1e3, s=12, color="k", zorder=3, label="users and UAVs")
    ax_w.set(xlabel="east (km)", ylabel="north (km)", title="satellite ground tracks during the run")
    ax_w.set_aspect("equal", adjustable="datalim")
    ax_w.grid(alpha=0.3)
    ax_w.legend(fontsize=7, loc="best")
    for name, (x, y) in world.get("users", {}).items():
        ax_l.scatter([x], [y], marker="s", s=28, color="0.25", zorder=4)
        ax_l.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for name, path_pts in world.get("uav_paths", {}).items():
        p = np.asarray(path_pts, float)
        ax_l.plot(p[:, 1], p[:, 2], color="tab:blue", lw=1.2, alpha=0.7)
        ax_l.scatter([p[0, 1]], [p[0, 2]], marker="^", s=50, facecolor="none", edgecolor="tab:blue", zorder=5)
        ax_l.scatter([p[-1, 1]], [p[-1, 2]], marker="^", s=60, color="tab:blue", zorder=5)
        ax_l.annotate(name, (p[-1, 1], p[-1, 2]), textcoords="offset points", xytext=(5, -10), fontsize=8,
                      color="tab:blue")
    modes = sorted({t["mode"] for t in tasks})
    colour = {m: cmap((i + 3) % 10) for i, m in enumerate(modes)}
    where = {n: np.asarray(p, float)[-1, 1:3] for n, p in world.get("uav_paths", {}).items()}
    users = {n: np.asarray(v[:2], float) for n, v in world.get("users", {}).items()}
    for t in tasks:
        nodes = str(t["route"]).split("->")
        if len(nodes) < 3 or nodes[-2] not in where or nodes[-1] not in users or t.get("mcs") == "not served":
            continue
        a, b = where[nodes[-2]], users[nodes[-1]]
        ax_l.plot([a[0], b[0]], [a[1], b[1]], color=colour[t["mode"]], lw=1.4, alpha=0.8)
        mid = (a + b) / 2
        ax_l.annotate("->".join(nodes[:-2]), mid, fontsize=6, color=colour[t["mode"]], alpha=0.9)
    for m in modes:
        ax_l.plot([], [], color=colour[m], lw=2, label=f"task in {m}")
    ax_l.plot([], [], color="tab:blue", marker="^", lw=1.2, label="UAV path (hollow: start)")
    ax_l.set(xlabel="east (m)", ylabel="north (m)", title="who served whom: UAV -> user, labelled with the LEO (and ISL)")
    ax_l.set_aspect("equal", adjustable="datalim")
    ax_l.grid(alpha=0.3)
    ax_l.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw(path: Path, fn, *args) -> bool:
    """Draw one plot (`fn(*args)` writes `path`); a plot that fails is logged and skipped, never the run.
    True when the file exists."""
    try:
        fn(*args)
    except Exception as exc:
        log.warning("report: %s could not be drawn: %s: %s", path.name, type(exc).__name__, exc)
        plt.close("all")
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return path.exists()


# --- index.html -----------------------------------------------------------------------------------------------

def _num(v: float | None, fmt: str) -> str:
    v = _fnum(v)
    return "-" if v is None else format(v, fmt)


def _dur(s: float | None) -> str:
    """A duration from nanoseconds to hours, in a unit that reads."""
    s = _fnum(s)
    if s is None:
        return "-"
    a = abs(s)
    if a == 0:
        return "0"
    if a < 1e-6:
        return f"{s * 1e9:.3g} ns"
    if a < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if a < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def _rate(v: Any) -> str:
    v = _fnum(v)
    return "-" if v is None else f"{v / 1e6:.3f}"


def _val(v: Any, limit: int = 600) -> str:
    """Any value as escaped text: floats to 4 significant digits, containers as compact JSON."""
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "-" if not np.isfinite(v) else html.escape(f"{float(v):.4g}")
    if isinstance(v, (dict, list, tuple)):
        try:
            text = json.dumps(clean_json(v), separators=(", ", ": "))
        except (TypeError, ValueError):
            text = str(v)
        return html.escape(text if len(text) <= limit else text[:limit] + " ...")
    return html.escape(str(v))


def _section(title: str, build, *args) -> str:
    """One page section; a section that cannot be rendered says so instead of breaking the page."""
    try:
        return build(*args)
    except Exception as exc:
        log.warning("report: section %r could not be rendered: %s: %s", title, type(exc).__name__, exc)
        return f"<h2>{html.escape(title)}</h2><p class=\"note\">could not be rendered: {html.escape(str(exc))}</p>"


def _settings_html(summary: dict[str, Any]) -> str:
    esc = html.escape
    radio = summary.get("radio")
    if isinstance(radio, dict):
        radio_text = esc(str(radio.get("kind", "?")))
        rest = {k: v for k, v in radio.items() if k != "kind" and v not in (None, {}, [], "")}
        if rest:
            radio_text += f" <span class=\"dim\">{_val(rest, 300)}</span>"
    else:
        radio_text = _val(radio)
    controllers = summary.get("controllers")
    compared = [c for c in controllers if c != summary.get("controller")] if isinstance(controllers, dict) else []
    rows = [
        ("run id", _val(summary.get("run_id"))),
        ("flowgraph", f"<code>{_val(summary.get('flowgraph'))}</code>"),
        ("seed", _val(summary.get("seed"))),
        ("version", _val(summary.get("version"))),
        ("timing", _val(summary.get("timing"))),
        ("radio", radio_text),
        ("controller", _val(summary.get("controller")) + (f" (compared with {esc(', '.join(compared))})"
                                                          if compared else "")),
        ("symbol rate", f"{_fnum(summary.get('symbol_rate_hz')) / 1e6:.4g} Msym/s"
         if _fnum(summary.get("symbol_rate_hz")) is not None else "-"),
        ("started", _val(summary.get("started")) if summary.get("started") else "-"),
        ("wall time", _dur(summary.get("wall_time_s"))),
    ]
    if summary.get("aborted"):
        rows.append(("aborted", f"<span class=\"badtext\">{_val(summary.get('aborted'))}</span>"))
    for mode, why in (summary.get("modes_left_out") or {}).items():
        rows.append((f"{mode} left out", f"<span class=\"badtext\">{esc(why)}</span>"))
    body = "".join(f"<tr><th>{esc(k)}</th><td class=\"text\">{v}</td></tr>" for k, v in rows if v not in ("-", ""))
    resolved = summary.get("resolved_flowgraph")
    details = ""
    if resolved:
        try:
            text = json.dumps(clean_json(resolved), indent=2)
        except (TypeError, ValueError):
            text = str(resolved)
        details = f"<details><summary>resolved flowgraph</summary><pre>{esc(text)}</pre></details>"
    return f"<h2>Run settings</h2><table class=\"settings\">{body}</table>{details}"


CANDIDATE_COLUMNS = {
    "bits_per_pixel": "bits/pixel", "bandwidth_ratio": "bandwidth ratio", "delay_s": "predicted delay",
    "psnr_db": "predicted PSNR (dB)", "scc": "predicted SCC", "delivers": "delivers",
}
PREDICTED_MEASURED = {"delay_s": "delay", "psnr_db": "PSNR (dB)", "scc": "SCC"}


def _hop_order(route: Any, *maps: Any) -> list[str]:
    nodes = str(route).split("->") if route else []
    order = [f"{a}->{b}" for a, b in zip(nodes, nodes[1:])]
    for m in maps:
        for k in (m or {}):
            if k not in order:
                order.append(k)
    return order


def _user_rates_of(summary: dict[str, Any], task_id: Any) -> dict[str, Any] | None:
    """The measured per-user rates of a task under the run's main controller (semantic-relay frames)."""
    ctrl = (summary.get("controllers") or {}).get(summary.get("controller"))
    for f in (ctrl or {}).get("frames") or []:
        for user, u in (f.get("users") or {}).items():
            if isinstance(u, dict) and u.get("task_id") == task_id:
                return {"user": user, **u}
    return None


def _trail_html(summary: dict[str, Any], t: dict[str, Any]) -> str:
    esc = html.escape
    trail = t.get("trail") if isinstance(t.get("trail"), dict) else {}
    predicted = t.get("predicted") if isinstance(t.get("predicted"), dict) else {}
    nums = timeline_numbers(t.get("timeline") if isinstance(t.get("timeline"), list) else None, t.get("delay_s"))
    choice = trail.get("choice") if trail.get("choice") is not None else t.get("mode")
    why = trail.get("why")
    badges = ""
    if trail.get("served") is False:
        badges += " <span class=\"badtext\">not served</span>"
    if t.get("fallback"):
        badges += " <span class=\"badtext\">controller fallback</span>"
    head = (f"<summary><b>task {_val(t.get('task_id'))}</b> {_val(t.get('name'))}: "
            f"<b>{_val(choice)}</b>{' - ' + _val(why) if why else ''}{badges}</summary>")
    parts = [f"<p>Route <code>{_val(trail.get('route', t.get('route')))}</code>"
             f"{'; choice <b>' + _val(choice) + '</b>' if choice is not None else ''}"
             f"{', because ' + _val(why) if why else ''}.</p>"]
    if trail.get("served") is False and trail.get("why_not_served"):
        parts.append(f"<p class=\"badtext\">Not served: {_val(trail['why_not_served'])}</p>")
    # hops: what was sounded, what was chosen, what happened
    snr, src, mcs = (trail.get(k) if isinstance(trail.get(k), dict) else {} for k in ("snr_db", "snr_source", "mcs"))
    measured = {h["link"]: h for h in (nums or {}).get("hops", [])}
    hops = _hop_order(trail.get("route", t.get("route")), snr, mcs, measured)
    if snr or mcs or measured:
        rows = []
        for lk in hops:
            h = measured.get(lk, {})
            rows.append(
                f"<tr><td class=\"text\">{esc(lk)}</td><td>{_num(snr.get(lk), '.2f')}</td>"
                f"<td class=\"text\">{_val(src.get(lk)) if lk in src else '-'}</td>"
                f"<td class=\"text\">{_val(mcs.get(lk, h.get('mcs')))}</td><td>{_num(h.get('snr_db'), '.2f')}</td>"
                f"<td>{_dur(h.get('air_s'))}</td><td>{_dur(h.get('propagation_s'))}</td>"
                f"<td>{_dur(h.get('arq_wait_s'))}</td><td>{_val(h.get('retransmissions'))}</td></tr>")
        parts.append("<table><tr><th>hop</th><th>sounded Es/N0 (dB)</th><th>sounding</th><th>MCS</th>"
                     "<th>Es/N0 at the send (dB)</th><th>air time</th><th>propagation</th><th>ARQ wait</th>"
                     f"<th>retransmissions</th></tr>{''.join(rows)}</table>")
    # the candidates the controller weighed
    cands = trail.get("candidates")
    if isinstance(cands, dict) and cands:
        cands = {m: (c if isinstance(c, dict) else {"value": c}) for m, c in cands.items()}
        keys = [k for k in CANDIDATE_COLUMNS if any(k in c for c in cands.values())]
        for c in cands.values():
            for k in c:
                if k not in keys:
                    keys.append(k)
        rows = []
        for mode, c in cands.items():
            cls = " class=\"chosen\"" if mode == choice else ""
            cells = "".join(
                f"<td>{_dur(c.get(k)) if k == 'delay_s' else _val(c.get(k))}</td>" for k in keys)
            rows.append(f"<tr{cls}><td class=\"text\">{esc(str(mode))}{' &#10004;' if mode == choice else ''}</td>"
                        f"{cells}</tr>")
        heads = "".join(f"<th>{esc(CANDIDATE_COLUMNS.get(k, k))}</th>" for k in keys)
        parts.append(f"<table><tr><th>candidate mode</th>{heads}</tr>{''.join(rows)}</table>")
    # predicted against what happened
    if predicted:
        user = _user_rates_of(summary, t.get("task_id")) or {}
        rows = []
        for k, v in predicted.items():
            if k in PREDICTED_MEASURED:
                got = t.get(k)
                fmt = _dur if k == "delay_s" else (lambda x: _num(x, ".4g"))
                rows.append(f"<tr><th>{esc(PREDICTED_MEASURED[k])}</th><td>{fmt(v)}</td><td>{fmt(got)}</td></tr>")
            elif str(k).endswith("_bps"):
                got = "-"
                if k == "rate_bps" and user:
                    got = (f"{_rate(user.get('measured_rate_bps'))} at the measured SNR, "
                           f"{_rate(user.get('phy_rate_bps'))} by the PHY ({esc(str(user.get('user')))})")
                label = str(k)[:-4].replace("_", " ") + " (Mbit/s)"
                rows.append(f"<tr><th>{esc(label)}</th><td>{_rate(v)}</td><td>{got}</td></tr>")
            else:
                rows.append(f"<tr><th>{esc(str(k).replace('_', ' '))}</th><td>{_val(v)}</td><td>-</td></tr>")
        parts.append("<table><tr><th>controller's prediction</th><th>predicted</th><th>measured</th></tr>"
                     f"{''.join(rows)}</table>")
    # everything else the controller wrote down
    shown = {"route", "choice", "why"} | {k for k in ("snr_db", "snr_source", "mcs", "candidates")
                                          if isinstance(trail.get(k), dict)}
    rest = {k: v for k, v in trail.items() if k not in shown}
    if rest:
        items = "".join(f"<tr><th>{esc(str(k))}</th><td class=\"text wrap\">{_val(v)}</td></tr>" for k, v in rest.items())
        parts.append(f"<table>{items}</table>")
    if nums:
        parts.append(f"<p>Waited {_dur(nums['wait_s'])}, encoded in {_dur(nums['encode_s'])}, "
                     f"{len(nums['hops'])} hop(s): air {_dur(nums['air_s'])}, propagation "
                     f"{_dur(nums['propagation_s'])}, ARQ wait {_dur(nums['arq_wait_s'])} "
                     f"({nums['retransmissions']} retransmissions), decoded in {_dur(nums['decode_s'])}; "
                     f"delay {_dur(t.get('delay_s'))} against a deadline of {_dur(t.get('deadline_s'))}.</p>")
    return f"<details>{head}{''.join(parts)}</details>"


def _trails_html(summary: dict[str, Any]) -> str:
    tasks = summary.get("tasks") or []
    if not tasks:
        return ""
    blocks = []
    for t in tasks:
        try:
            blocks.append(_trail_html(summary, t))
        except Exception as exc:  # one odd trail never hides the others
            log.warning("report: trail of task %s not rendered: %s", t.get("task_id"), exc)
            blocks.append(f"<details><summary>task {_val(t.get('task_id'))}: trail could not be rendered "
                          f"({html.escape(str(exc))})</summary></details>")
    return ("<h2>Why each task went as it did</h2><p class=\"note\">Per task: the Es/N0 sounded on each hop "
            "(measured by a probe, or predicted by the link budget), the candidate modes with the controller's "
            "predicted quality, delay and SCC, the MCS per hop, the choice and why; then what happened.</p>"
            + "".join(blocks))


def _timeline_html(summary: dict[str, Any], figs: str) -> str:
    rows = []
    for t in summary.get("tasks") or []:
        n = timeline_numbers(t.get("timeline") if isinstance(t.get("timeline"), list) else None, t.get("delay_s"))
        tid = _val(t.get("task_id"))
        if not n:
            rows.append(f"<tr><td>{tid}</td><td class=\"text\" colspan=\"10\">no timeline (not carried)</td></tr>")
            continue
        per_hop = "<br>".join(
            f"{html.escape(h['link'])}: {_dur(h['air_s'])} air + {_dur(h['propagation_s'])} prop"
            + (f" + {_dur(h['arq_wait_s'])} ARQ" if h["arq_wait_s"] > 0 else "")
            + (f", {h['retransmissions']} retx" if h["retransmissions"] else "") for h in n["hops"])
        bad = ' class="bad"' if t.get("met_deadline") is False else ""
        rows.append(
            f"<tr><td>{tid}</td><td>{_dur(n['wait_s'])}</td><td>{_dur(n['encode_s'])}</td>"
            f"<td>{_dur(n['air_s'])}</td><td>{_dur(n['propagation_s'])}</td><td>{_dur(n['arq_wait_s'])}</td>"
            f"<td>{n['retransmissions']}</td><td>{_dur(n['decode_s'])}</td>"
            f"<td{bad}>{_dur(t.get('delay_s'))}</td><td>{_dur(t.get('deadline_s'))}</td>"
            f"<td class=\"text small\">{per_hop}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Timeline</h2><p class=\"note\">Per task, from its arrival: waiting (planning, UAV flight), encode, "
            "each hop's air time (all ARQ rounds), propagation and the rest of the hop (ARQ feedback), decode.</p>"
            "<div class=\"scroll\"><table><tr><th>task</th><th>waited</th><th>encode</th><th>air</th>"
            "<th>propagation</th><th>ARQ wait</th><th>retransmissions</th><th>decode</th><th>delay</th>"
            f"<th>deadline</th><th>per hop</th></tr>{''.join(rows)}</table></div>{figs}")


def _links_html(summary: dict[str, Any], figs: str) -> str:
    esc = html.escape
    links = "".join(
        f"<tr><td class=\"text\">{esc(str(lk.get('link')))}</td><td>{_num(lk.get('mean_snr_db'), '.2f')}</td>"
        f"<td>{_num(lk.get('bler'), '.3g')}</td>"
        f"<td>{_ci(lk.get('bler_ci95'))}</td><td>{_val(lk.get('blocks'))}</td>"
        f"<td>{_val(lk.get('block_errors'))}</td></tr>"
        for lk in summary.get("links") or [])
    out = ("<h2>Links</h2><table><tr><th>link</th><th>mean measured Es/N0 (dB)</th><th>BLER</th>"
           "<th>BLER 95 % CI</th><th>code blocks</th><th>block errors</th></tr>" + links + "</table>")
    pts = summary.get("bler_points") or []
    if pts:
        rows = "".join(
            f"<tr><td class=\"text\">{esc(str(p.get('mcs')))}</td><td>{_num(p.get('snr_db'), '.2f')}</td>"
            f"<td>{_val(p.get('blocks'))}</td><td>{_val(p.get('errors'))}</td><td>{_num(p.get('bler'), '.3g')}</td>"
            f"<td>{_ci(p.get('ci95'))}</td><td>{_num(p.get('table_bler'), '.3g')}</td>"
            f"<td class=\"text small\">{esc(', '.join(p.get('links') or []))}</td></tr>" for p in pts)
        out += ("<h3>Measured BLER against the table</h3><p class=\"note\">Data sends pooled per MCS in "
                f"{BLER_BIN_DB:g} dB Es/N0 bins (probes and analog JSCC bursts excluded); 95 % Clopper-Pearson "
                "intervals; <i>table</i>: the shipped AWGN BLER table at the bin's mean Es/N0 (0 where the table's own "
                "measurement saw no errors).</p>"
                "<div class=\"scroll\"><table><tr><th>MCS</th><th>Es/N0 (dB)</th><th>blocks</th><th>errors</th>"
                "<th>BLER</th><th>95 % CI</th><th>table</th><th>links</th></tr>" + rows + "</table></div>")
    return out + figs


def _ci(ci: Any) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "-"
    return f"[{_num(ci[0], '.3g')}, {_num(ci[1], '.3g')}]"


def _show_controllers(summary: dict[str, Any]) -> bool:
    c = summary.get("controllers")
    return isinstance(c, dict) and (len(c) > 1 or any(isinstance(v, dict) and "sum_rate_bps" in v for v in c.values()))


def _controllers_html(summary: dict[str, Any], figs: str) -> str:
    if not _show_controllers(summary):
        return ""
    esc = html.escape
    ctrls = summary["controllers"]
    rated = any(isinstance(v, dict) and "sum_rate_bps" in v for v in ctrls.values())
    rows = []
    for algo, m in ctrls.items():
        m = m if isinstance(m, dict) else {}
        main = algo == summary.get("controller")
        rate_cells = ("".join(f"<td>{_rate(m.get(k))}</td>" for k, _ in RATE_KEYS) if rated else "")
        rows.append(
            f"<tr><td class=\"text\">{esc(str(algo))}{' (main)' if main else ''}</td><td>{_val(m.get('tasks'))}</td>"
            f"<td>{_val(m.get('met_deadline'))}</td><td>{_val(m.get('met_quality'))}</td>"
            f"<td>{_val(m.get('met_both'))}</td><td>{_num(m.get('mean_scc'), '.3f')}</td>"
            f"<td>{_num(m.get('mean_psnr_db'), '.2f')}</td><td>{_dur(m.get('mean_delay_s'))}</td>"
            f"<td>{_val(m.get('fallbacks'))}</td>{rate_cells}</tr>")
    rate_heads = ("<th>predicted sum rate (Mbit/s)</th><th>sum rate at measured SNRs (Mbit/s)</th>"
                  "<th>PHY sum rate (Mbit/s)</th>" if rated else "")
    out = ("<h2>Controllers compared</h2><p class=\"note\">The same tasks in the same world (same seed) under each "
           "controller. Sum rates are semantic-equivalent means over frames: <i>predicted</i> by the controller, "
           "the rate model at the SNRs the receivers <i>measured</i>, and what the PHY's MCS <i>delivered</i>. "
           "A mean delay of - means some task was not served.</p>"
           "<div class=\"scroll\"><table><tr><th>controller</th><th>tasks</th><th>met deadline</th>"
           f"<th>met quality</th><th>met both</th><th>mean SCC</th><th>mean PSNR (dB)</th><th>mean delay</th>"
           f"<th>fallbacks</th>{rate_heads}</tr>{''.join(rows)}</table></div>")
    for algo, m in ctrls.items():
        frames = m.get("frames") if isinstance(m, dict) else None
        if not frames:
            continue
        body = []
        for i, f in enumerate(frames):
            for user, u in (f.get("users") or {}).items():
                u = u if isinstance(u, dict) else {}
                body.append(
                    f"<tr><td>{i}</td><td class=\"text\">{esc(str(user))}</td><td>{_val(u.get('task_id'))}</td>"
                    f"<td class=\"text\">{_val(u.get('kind'))}</td><td>{_rate(u.get('predicted_rate_bps'))}</td>"
                    f"<td>{_rate(u.get('measured_rate_bps'))}</td><td>{_rate(u.get('phy_rate_bps'))}</td>"
                    f"<td>{_num(u.get('semantic_gain'), '.3g')}</td></tr>")
            body.append(f"<tr class=\"sum\"><td>{i}</td><td class=\"text\" colspan=\"3\">sum (semantic-equivalent)"
                        f"</td><td>{_rate(f.get('predicted_sum_rate_bps'))}</td><td>{_rate(f.get('sum_rate_bps'))}</td>"
                        f"<td>{_rate(f.get('phy_sum_rate_bps'))}</td><td></td></tr>")
        out += (f"<details><summary>{esc(str(algo))}: per frame and user (Mbit/s)</summary><table><tr><th>frame</th>"
                "<th>user</th><th>task</th><th>kind</th><th>predicted</th><th>measured SNR</th><th>PHY</th>"
                f"<th>semantic gain</th></tr>{''.join(body)}</table></details>")
    return out + figs


SECTION_PLOTS = {"timeline.png": "timeline", "bler.png": "links", "rates.png": "controllers",
                 "users.png": "controllers"}


def _html(summary: dict[str, Any], plots: list[tuple[str, str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in TASK_COLUMNS)
    rows = []
    for t in summary["tasks"]:
        cells = []
        for c in TASK_COLUMNS:
            v = t.get(c)
            text = f"{v:.3g}" if isinstance(v, float) else ("-" if v is None else str(v))
            cls = ' class="bad"' if v is False else (' class="good"' if v is True else "")
            cells.append(f"<td{cls}>{esc(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    tot = summary["totals"]

    def fig(f: str, c: str) -> str:
        return f'<figure><img src="{esc(f)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>'

    by_section: dict[str, str] = {}
    general = []
    for f, c in plots:
        if f in SECTION_PLOTS:
            by_section[SECTION_PLOTS[f]] = by_section.get(SECTION_PLOTS[f], "") + fig(f, c)
        else:
            general.append(fig(f, c))
    settings = _section("Run settings", _settings_html, summary)
    trails = _section("Why each task went as it did", _trails_html, summary)
    timeline = _section("Timeline", _timeline_html, summary, by_section.get("timeline", ""))
    links = _section("Links", _links_html, summary, by_section.get("links", ""))
    controllers = _section("Controllers compared", _controllers_html, summary, by_section.get("controllers", ""))
    wall = _fnum(summary.get("wall_time_s")) or 0.0
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>sagin-hil: {esc(str(summary['name']))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.8em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
td.text {{ text-align: left; }} td.wrap {{ white-space: normal; max-width: 60em; }} td.small {{ font-size: 0.9em; }}
td.good {{ color: #1a7f37; }} td.bad {{ color: #cf222e; font-weight: bold; }}
tr.chosen td {{ background: #e6f4ea; font-weight: bold; }} tr.sum td {{ background: #f7f7f7; font-weight: bold; }}
table.settings th {{ text-align: left; }}
.badtext {{ color: #cf222e; font-weight: bold; }} .dim {{ color: #666; }} .note {{ color: #555; font-size: 0.9em; }}
details {{ margin: 0.4em 0; padding: 0.2em 0.6em; border-left: 3px solid #ddd; }}
details[open] {{ border-left-color: #6a9fd8; }} summary {{ cursor: pointer; }}
pre {{ background: #f5f5f5; padding: 0.6em; font-size: 0.75em; max-height: 30em; overflow: auto; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
code {{ background: #f5f5f5; padding: 0 0.2em; }}
</style></head><body>
<h1>sagin-hil run: {esc(str(summary['name']))}</h1>
<p>{esc(str(summary.get('description', '') or ''))}</p>
{settings}
<p>Flowgraph <code>{esc(str(summary.get('flowgraph', '')))}</code>, took {wall:.1f} s.
{tot['tasks']} tasks: {tot['met_deadline']} met their deadline,
{tot['met_quality']} their quality floor; mean SCC {_num(tot['mean_scc'], '.3f')}.</p>
<h2>Tasks</h2><div class="scroll"><table><tr>{head}</tr>{''.join(rows)}</table></div>
{trails}
{timeline}
{links}
{controllers}
<h2>Plots</h2>{''.join(general)}
<p>Files: <a href="summary.json">summary.json</a>, <a href="tasks.csv">tasks.csv</a>.</p>
</body></html>
"""


def _minimal_html(summary: dict[str, Any], plots: list[tuple[str, str]], exc: Exception) -> str:
    """The page when the full one cannot be rendered: the error, the plots and the data files."""
    esc = html.escape
    figs = "".join(f'<figure><img src="{esc(f)}" alt="{esc(c)}"><figcaption>{esc(c)}</figcaption></figure>'
                   for f, c in plots)
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>sagin-hil: {esc(str(summary.get('name')))}"
            f"</title></head><body><h1>sagin-hil run: {esc(str(summary.get('name')))}</h1><p>The full page could "
            f"not be rendered ({esc(type(exc).__name__)}: {esc(str(exc))}); the data is in "
            f"<a href=\"summary.json\">summary.json</a> and <a href=\"tasks.csv\">tasks.csv</a>.</p>{figs}"
            "</body></html>\n")


def write_report(
    out_dir: Path,
    summary: dict[str, Any],
    records: list[TaskRecord],
    links: list[LinkTrace],
    max_constellation_points: int = 4000,
) -> Path:
    """Write the whole report folder; returns the path of index.html.

    summary.json and tasks.csv are written first; every plot and page section fails soft (logged and
    skipped), so a plot that cannot be drawn never costs the run its data.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(clean_json(summary), indent=2))
    with open(out_dir / "tasks.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TASK_COLUMNS)
        writer.writeheader()
        for t in summary["tasks"]:
            writer.writerow({c: t[c] for c in TASK_COLUMNS})
    plots = []
    if _draw(out_dir / "constellations.png", _plot_constellations, links, out_dir / "constellations.png",
             max_constellation_points):
        plots.append(("constellations.png", "Received constellation per hop (after synchronisation)"))
    if _draw(out_dir / "pass.png", _plot_pass, links, out_dir / "pass.png", records):
        plots.append(("pass.png", "Es/N0 (predicted line, measured dots) and Doppler over the satellite's visibility "
                                  "window; dotted lines: when tasks were carried"))
    if summary.get("map") and _draw(out_dir / "map.png", _plot_map, summary["map"], summary["tasks"], out_dir / "map.png"):
        plots.append(("map.png", "The world: satellite ground tracks during the run; UAV paths, users, and which "
                                 "satellite, UAV and mode served each task"))
    if _draw(out_dir / "tasks.png", _plot_tasks, records, out_dir / "tasks.png"):
        plots.append(("tasks.png", "Per task: delay against deadline, PSNR against floor (red: missed)"))
    if _draw(out_dir / "images.png", _plot_images, records, out_dir / "images.png"):
        plots.append(("images.png", "Sent (top) and received (bottom) images"))
    if _draw(out_dir / "timeline.png", _plot_timeline, records, out_dir / "timeline.png"):
        plots.append(("timeline.png", "Per task: when each stage ended (log time from arrival, | deadline) and each "
                                      "stage's share of the delay"))
    bler_points = summary.get("bler_points")
    if bler_points is None:
        bler_points = aggregate_bler_points([(lt.link_id, p) for lt in links for p in (lt.bler_points or [])])
    if _draw(out_dir / "bler.png", _plot_bler, bler_points, out_dir / "bler.png"):
        plots.append(("bler.png", "Measured BLER with 95 % Clopper-Pearson intervals on the BLER table's curves "
                                  "(triangles: upper bound of bins without errors)"))
    controllers = summary.get("controllers") if isinstance(summary.get("controllers"), dict) else {}
    if _show_controllers(summary):
        if _draw(out_dir / "rates.png", _plot_rates, controllers, out_dir / "rates.png"):
            plots.append(("rates.png", "Sum rate per controller: predicted, at the measured SNRs, delivered by the PHY"))
        if _draw(out_dir / "users.png", _plot_user_rates, controllers, out_dir / "users.png"):
            plots.append(("users.png", "Per user and frame: predicted vs measured rate, one colour per controller"))
    index = out_dir / "index.html"
    try:
        page = _html(summary, plots)
    except Exception as exc:
        log.warning("report: index.html fell back to a minimal page: %s: %s", type(exc).__name__, exc)
        page = _minimal_html(summary, plots, exc)
    index.write_text(page)
    return index
