"""Link adaptation: per-hop MCS from measured SNR, and per task the mode and codec budget with the highest
predicted semantic communication capacity (SCC, Eq. 14 of [P000], docs/references.md).

For every task of the ControllerState and each of its candidate routes:

1. each hop gets the highest-rate MCS of phy.mcs.MCS_TABLE whose measured BLER at (SNR - margin_db) is at
   most `target_bler` (SNR: the hop's latest LinkReport, else the ephemeris prediction, else unknown -> the
   most robust MCS);
2. every allowed mode (codecs.modes.MODES) is predicted from the measured mode table:
   - Mode 1 (JPEG 2000, rate adaptive): delay D(bpp) = compute + propagation + sum_h bpp P / (Rs_h SE_h),
     quality from the task image's own rate-quality curve (Task.quality, measured at the transmitter) or else
     the measured mean curve; among budgets with Q >= Q_min and D <= D_max the one of
     highest SCC, else the deadline wins (the largest budget that meets D_max, else the smallest);
   - fixed-size digital modes (VQ, Modes 3_x): their measured bits and compute time, the image's own PSNR
     (else the table's mean), the same MCS;
   - analog modes (deep JSCC): quality from the image's own PSNR-vs-SNR curve (else the table's mean) at
     the route's amplify-and-forward SNR (phy.theory.relay_snr_db), delay from ratio x 3 x P channel uses
     per hop;
3. the mode (and route) of highest predicted SCC wins; digital modes compete only where every hop's MCS
   meets the BLER target (a digital link below its threshold delivers nothing, an analog one a noisier image).

Compute times are the measured ones of the mode table (codecs/weights/mode_table.json); `compute_delay_s`
overrides Mode 1's. The Plan's trail holds, per task, every candidate with its prediction and the reason
for the choice.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sagin_hil.codecs.modes import MODES, ModeSpec, RateQualityTable, load_mode_table
from sagin_hil.controllers.base import Controller
from sagin_hil.controllers.constraints import Pairings
from sagin_hil.controllers.scc import scc_weights
from sagin_hil.datatypes import Allocation, ControllerState, HopAllocation, Plan, Route, Task
from sagin_hil.phy.mcs import MCS_TABLE, Mcs
from sagin_hil.phy.theory import relay_snr_db

__all__ = ["LinkAdaptation", "ShannonGapBler", "DEFAULT_IMAGE_PIXELS"]

log = logging.getLogger(__name__)
DEFAULT_IMAGE_PIXELS = 512 * 512  # a task whose image shape is unknown is planned as 512 x 512


class BlerSource(Protocol):
    def bler(self, mcs_name: str, snr_db: float) -> float: ...


class ShannonGapBler:
    """Stand-in BLER model used only when no measured table is installed: an MCS works (BLER 0) when
    its spectral efficiency is below log2(1 + SNR / gap), else fails (BLER 1). gap_db ~ 3 dB for LDPC."""

    def __init__(self, gap_db: float = 3.0):
        self.gap_db = gap_db

    def bler(self, mcs_name: str, snr_db: float) -> float:
        from sagin_hil.phy.mcs import get_mcs

        cap = math.log2(1.0 + 10 ** ((snr_db - self.gap_db) / 10))
        return 0.0 if get_mcs(mcs_name).spectral_efficiency <= cap else 1.0


def _default_bler() -> BlerSource:
    try:
        from sagin_hil.calibration.bler import BlerTable

        return BlerTable.load()
    except (ImportError, FileNotFoundError, OSError) as exc:
        log.warning("no measured BLER table (%s); using the Shannon-gap stand-in", exc)
        return ShannonGapBler()


def _default_table() -> dict[str, Any] | None:
    try:
        return load_mode_table()
    except FileNotFoundError as exc:
        log.warning("%s; only Mode 1 at the paper's compute time can be predicted", exc)
        return None


class LinkAdaptationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target_bler: float = Field(0.1, gt=0, lt=1, description="code-block error rate an MCS may have at the hop's SNR")
    margin_db: float = Field(0.0, ge=0, le=30, description="SNR back-off for outdated measurements, dB")
    bler_table: str | None = Field(None, description="BLER table written by `sagin-hil calibrate bler` (default: shipped)")
    mode_table: str | None = Field(None, description="mode table JSON (default: codecs/weights/mode_table.json)")
    compute_delay_s: float | None = Field(None, ge=0, description="Mode 1 encode + decode time (default: measured)")


class LinkAdaptation(Controller):
    """Mode choice, codec budget and per-hop MCS from measured link quality (module docstring).

    Parameters
    ----------
    target_bler, margin_db, compute_delay_s: see LinkAdaptationOptions.
    bler_table: object with .bler(mcs_name, snr_db), or the path of a `sagin-hil calibrate bler` table.
    mode_table: the mode table as loaded (dict) or its path (default: the stored one).
    quality_table: a JPEG 2000 rate-quality table overriding the mode table's (RateQualityTable.coerce forms).
    mcs_table: the MCSs to choose from.

    After each call `last_decision` holds the last task's trail (also in the Plan's trail).
    """

    name = "link-adaptation"

    Options = LinkAdaptationOptions

    def __init__(self, target_bler: float = 0.1, margin_db: float = 0.0, bler_table: Any = None,
                 mode_table: dict[str, Any] | str | Path | None = None, compute_delay_s: float | None = None,
                 quality_table: Any = None, mcs_table: tuple[Mcs, ...] = MCS_TABLE):
        if not 0 < target_bler < 1:
            raise ValueError(f"target_bler = {target_bler!r} must lie in (0, 1)")
        if isinstance(bler_table, (str, Path)):
            from sagin_hil.calibration.bler import BlerTable

            bler_table = BlerTable.load(bler_table)
        self.bler_table = bler_table if bler_table is not None else _default_bler()
        self.table = load_mode_table(mode_table) if isinstance(mode_table, (str, Path)) else (
            mode_table if mode_table is not None else _default_table())
        if quality_table is not None:
            self.quality = RateQualityTable.coerce(quality_table)
        elif self.table is not None:
            self.quality = RateQualityTable.coerce(self.table["j2k_rate_quality"])
        else:
            raise ValueError("no JPEG 2000 rate-quality table: give quality_table=... or measure the mode table "
                             "with `sagin-hil train modes`")
        self.target_bler, self.margin_db, self.compute_delay_s = target_bler, margin_db, compute_delay_s
        self.mcs_table = tuple(sorted(mcs_table, key=lambda m: m.spectral_efficiency))
        self.last_decision: dict[str, Any] = {}

    # -- per hop ------------------------------------------------------------------------------------------
    def choose_mcs(self, snr_db: float | None) -> Mcs:
        """Highest-rate MCS with BLER(snr_db - margin) <= target; the most robust one if none or unknown.
        MCSs the BLER table has not measured are never chosen (except the most robust as the default)."""
        if snr_db is None:
            return self.mcs_table[0]
        best = self.mcs_table[0]
        measured = set(getattr(self.bler_table, "mcs_names", None) or [m.name for m in self.mcs_table])
        for m in self.mcs_table:
            if m.name in measured and self.bler_table.bler(m.name, snr_db - self.margin_db) <= self.target_bler:
                best = m
        return best

    def _meets(self, mcs: Mcs, snr_db: float | None) -> bool:
        return snr_db is None or self.bler_table.bler(mcs.name, snr_db - self.margin_db) <= self.target_bler

    # -- per mode -----------------------------------------------------------------------------------------
    def _compute_s(self, spec: ModeSpec, bpp: float | None = None) -> float:
        if spec.rate_adaptive and self.compute_delay_s is not None:
            return self.compute_delay_s
        if self.table is None:
            return 0.1323  # [P000] Sec. V: Mode 1 encode + decode, used only without a measured table
        return spec.compute_time_s(self.table, bpp)

    @staticmethod
    def _scc(task: Task, delay_s: float, psnr_db: float) -> float:
        return float(scc_weights(np.array([delay_s]), np.array([psnr_db]), np.array([task.deadline_s]),
                                 np.array([task.quality_min_db]), task.weight_quality)[0])

    def _quality_of(self, task: Task) -> RateQualityTable:
        """The task image's own JPEG 2000 curve when the transmitter measured one, else the table's mean."""
        return RateQualityTable(task.quality.bpp, task.quality.psnr_db) if task.quality is not None else self.quality

    def _choose_bpp(self, task: Task, d0: float, slope: float, quality: RateQualityTable) -> float:
        lo_tab, hi_tab = float(quality.bpp[0]), float(quality.bpp[-1])
        bpp_deadline = (task.deadline_s - d0) / slope
        bpp_quality = quality.bpp_for(task.quality_min_db)
        lo, hi = max(bpp_quality, lo_tab), min(bpp_deadline, hi_tab)
        if lo > hi:  # cannot meet both: keep the deadline if possible, with the best quality it allows
            return float(np.clip(bpp_deadline, lo_tab, hi_tab))
        grid = np.unique(np.concatenate([np.geomspace(lo, hi, 65), quality.bpp[(quality.bpp >= lo)
                                                                              & (quality.bpp <= hi)]]))
        w = scc_weights(d0 + slope * grid, quality.psnr_at(grid), np.full(grid.shape, task.deadline_s),
                        np.full(grid.shape, task.quality_min_db), task.weight_quality)
        return float(grid[int(np.argmax(w))])

    def _predict(self, spec: ModeSpec, task: Task, n_pixels: int, slope: float, prop_s: float,
                 rates: dict[str, float], e2e_db: float | None, delivers: bool) -> dict[str, Any] | None:
        """Predicted budget, delay, quality and SCC of one mode on one route (None: cannot be predicted)."""
        if spec.rate_adaptive:
            quality = self._quality_of(task)
            d0 = self._compute_s(spec, 1.0) + prop_s
            bpp = self._choose_bpp(task, d0, slope, quality)
            delay = self._compute_s(spec, bpp) + prop_s + slope * bpp
            psnr = float(quality.psnr_at(bpp))
            return {"bits_per_pixel": bpp, "delay_s": delay, "psnr_db": psnr, "scc": self._scc(task, delay, psnr),
                    "delivers": delivers}
        if self.table is None or spec.table_key not in self.table["modes"]:
            return None
        if spec.analog:
            if e2e_db is None:
                return None  # its quality needs every hop's SNR
            n_sym = spec.symbols(n_pixels)
            delay = self._compute_s(spec) + prop_s + sum(n_sym / r for r in rates.values())
            own = task.quality.analog_psnr_at(spec.name, e2e_db) if task.quality is not None else None
            psnr = spec.psnr_db(self.table, snr_db=e2e_db) if own is None else own
            return {"bandwidth_ratio": spec.bandwidth_ratio(), "delay_s": delay, "psnr_db": psnr,
                    "scc": self._scc(task, delay, psnr), "delivers": True, "e2e_snr_db": e2e_db}
        bpp = spec.bits_per_pixel(self.table)
        delay = self._compute_s(spec) + prop_s + slope * bpp
        own = task.quality.mode_psnr_db.get(spec.name) if task.quality is not None else None
        psnr = spec.psnr_db(self.table) if own is None else own
        return {"bits_per_pixel": bpp, "delay_s": delay, "psnr_db": psnr, "scc": self._scc(task, delay, psnr),
                "delivers": delivers}

    def _route(self, task: Task, route: Route, state: ControllerState) -> tuple[Allocation, dict[str, Any]]:
        n_pixels = task.n_pixels or DEFAULT_IMAGE_PIXELS
        links = route.links
        snr = {h: state.snr_db(h) for h in links}
        mcs = {h: self.choose_mcs(snr[h]) for h in links}
        rates = {h: state.symbol_rate_hz(h) for h in links}
        prop_s = sum(float(state.propagation_delay_s.get(h, 0.0)) for h in links)
        slope = sum(n_pixels / (rates[h] * mcs[h].spectral_efficiency) for h in links)  # s per bit per pixel
        delivers = all(self._meets(mcs[h], snr[h]) for h in links)
        e2e_db = relay_snr_db([snr[h] for h in links]) - self.margin_db if None not in snr.values() else None
        candidates = {}
        for name in state.modes:
            pred = self._predict(MODES.get(name), task, n_pixels, slope, prop_s, rates, e2e_db, delivers)
            if pred is not None:
                candidates[name] = pred
        if not candidates:
            raise ValueError(f"none of the modes {state.modes} can be predicted: measure the mode table "
                             "(`sagin-hil train modes`)")
        usable = {m: c for m, c in candidates.items() if c["delivers"]}
        pool = usable or candidates
        mode = max(pool, key=lambda m: (pool[m]["scc"], pool[m]["psnr_db"]))
        best = candidates[mode]
        spec = MODES.get(mode)
        meets = best["delay_s"] <= task.deadline_s and best["psnr_db"] >= task.quality_min_db
        why = ("highest predicted SCC" + (" among the modes whose every hop meets BLER <= "
                                           f"{self.target_bler:g}" if len(usable) < len(candidates) else ""))
        if not usable:
            why = "no digital MCS meets the BLER target on every hop; the best prediction is kept"
        elif not meets:
            why += "; no candidate meets both D_max and Q_min, the deadline took precedence"
        hops = {h: HopAllocation(mcs="analog" if spec.analog else mcs[h].name) for h in links}
        alloc = Allocation(task.task_id, route, mode=mode, bits_per_pixel=float(best.get("bits_per_pixel", 0.0)),
                           bandwidth_ratio=float(best.get("bandwidth_ratio", 0.0)), hops=hops,
                           predicted={k: float(best[k]) for k in ("delay_s", "psnr_db", "scc")})
        trail = {
            "route": str(route),
            "snr_db": {h: (None if snr[h] is None else round(float(snr[h]), 2)) for h in links},
            "snr_source": {h: ("measured" if h in state.reports else "predicted" if snr[h] is not None else "unknown")
                           for h in links},
            "mcs": {h: mcs[h].name for h in links},
            "candidates": {m: {k: (round(float(v), 4) if isinstance(v, (int, float)) and not isinstance(v, bool)
                                   else v) for k, v in c.items()} for m, c in candidates.items()},
            "choice": mode, "why": why, "feasible": bool(meets),
        }
        return alloc, trail

    def allocate(self, state: ControllerState) -> Plan:
        plan, pairings = Plan(), Pairings()  # task by task, keeping the pairings of (15a)-(15c)
        for task in state.tasks:
            options = [self._route(task, r, state) for r in pairings.allowed(state.routes[task.task_id])]
            alloc, trail = max(options, key=lambda o: (o[0].predicted["scc"], o[0].predicted["psnr_db"]))
            if len(options) > 1:
                trail["routes_considered"] = [str(a.route) for a, _ in options]
            plan.allocations[task.task_id] = alloc
            plan.trail[task.task_id] = trail
            pairings.take(alloc.route)
            self.last_decision = trail
        return plan
