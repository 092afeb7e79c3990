"""Link adaptation: per-hop MCS from measured SNR and a JPEG 2000 budget that meets D_max and Q_min.

For Mode 1 (JPEG 2000 + LDPC) over a route of store-and-forward hops:

1. each hop gets the highest-rate MCS of phy.mcs.MCS_TABLE whose measured BLER at (SNR - margin_db) is
   at most `target_bler` (SNR: the hop's latest LinkReport, else state["predicted_snr_db"][hop], else
   unknown -> the most robust MCS);
2. end-to-end delay for a budget of `bpp` bits per pixel over P pixels is
   D(bpp) = sum_h bpp P / (Rs_h * SE_h) + compute delay (0.1323 s for Mode 1) + propagation,
   with Rs_h the hop's symbol rate and SE_h the MCS's information bits per symbol;
3. quality Q(bpp) is the measured JPEG 2000 rate-quality table (PSNR vs bpp, log-bpp interpolation);
4. among budgets with Q >= Q_min and D <= D_max the one with the highest SCC (Eq. 14) is chosen; if none
   meets both, the deadline wins (largest budget that meets D_max, else the smallest budget).

When state["modes"] allows other modes, each is predicted from its row of the measured mode table:
- Modes 3_1..3_3 ("mode3_1".."mode3_3", VQ indices as bits over the same MCS per hop): a fixed number of
  bits per pixel and a fixed PSNR; delay as for Mode 1 at that budget.
- Deep JSCC ("jscc-1/12", "jscc-1/6": analog symbols, amplified and forwarded by the relays): quality from
  its PSNR-vs-SNR curve at the route's end-to-end SNR (amplify-and-forward: 1/SNR grows by
  1/SNR_h + 1/(SNR SNR_h) per hop), delay from its ratio * 3 * pixels channel uses per hop.
The mode with the highest predicted SCC wins; digital modes compete only when every hop's MCS meets the
BLER target (a digital link below its threshold delivers nothing, an analog one a noisier image).
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sagin_hil.controllers.base import Controller, register_controller
from sagin_hil.controllers.scc import scc_weights
from sagin_hil.datatypes import Allocation, LinkReport, Task
from sagin_hil.phy.mcs import MCS_TABLE, Mcs

__all__ = ["LinkAdaptation", "RateQualityTable", "ShannonGapBler", "MODE1_COMPUTE_DELAY_S", "relay_snr_db"]

log = logging.getLogger(__name__)
MODE1_COMPUTE_DELAY_S = 0.1323  # [P000] Sec. V (docs/references.md): JPEG 2000 encode + decode


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


class RateQualityTable:
    """Measured JPEG 2000 rate-quality points: bpp (increasing) -> mean PSNR dB.

    Parameters
    ----------
    bpp: budgets in bits per pixel, strictly increasing, > 0.
    psnr_db: mean PSNR at each budget (non-decreasing after sorting by bpp is enforced by a running max).
    """

    def __init__(self, bpp: np.ndarray, psnr_db: np.ndarray):
        bpp, psnr = np.asarray(bpp, float), np.asarray(psnr_db, float)
        if bpp.ndim != 1 or bpp.shape != psnr.shape or len(bpp) < 2:
            raise ValueError(f"rate-quality table needs >= 2 matching points; got bpp {bpp.shape}, psnr {psnr.shape}")
        order = np.argsort(bpp)
        bpp, psnr = bpp[order], psnr[order]
        if np.any(bpp <= 0) or np.any(np.diff(bpp) <= 0):
            raise ValueError(f"bpp must be distinct and > 0; got {bpp}")
        self.bpp, self.psnr_db = bpp, np.maximum.accumulate(psnr)

    @classmethod
    def coerce(cls, table: Any) -> RateQualityTable:
        """Accept a RateQualityTable, a map {"bpp": [...], "psnr_db" or "psnr": [...]}, an object with
        those attributes, or a list of (bpp, psnr) pairs / maps."""
        if isinstance(table, cls):
            return table
        get = table.get if isinstance(table, dict) else (lambda k, d=None: getattr(table, k, d))
        bpp = get("bpp")
        psnr = get("psnr_db", None)
        psnr = get("psnr") if psnr is None else psnr
        if bpp is not None and psnr is not None:
            return cls(np.asarray(bpp), np.asarray(psnr))
        if isinstance(table, (list, tuple)) and table:
            if isinstance(table[0], dict):
                return cls(np.array([r["bpp"] for r in table]),
                           np.array([r.get("psnr_db", r.get("psnr")) for r in table]))
            arr = np.asarray(table, float)
            return cls(arr[:, 0], arr[:, 1])
        raise ValueError(f"cannot read a rate-quality table from {type(table).__name__}; "
                         "give {'bpp': [...], 'psnr_db': [...]}")

    def psnr_at(self, bpp: np.ndarray) -> np.ndarray:
        """PSNR at `bpp`, linear in log(bpp) between points, clamped at the ends."""
        return np.interp(np.log(np.asarray(bpp, float)), np.log(self.bpp), self.psnr_db)

    def bpp_for(self, psnr_db: float) -> float:
        """Smallest budget reaching `psnr_db` (inf if the table never does)."""
        if psnr_db > self.psnr_db[-1]:
            return math.inf
        if psnr_db <= self.psnr_db[0]:
            return float(self.bpp[0])
        i = int(np.searchsorted(self.psnr_db, psnr_db))
        lo, hi = self.psnr_db[i - 1], self.psnr_db[i]
        frac = 0.0 if hi == lo else (psnr_db - lo) / (hi - lo)
        return float(np.exp(np.log(self.bpp[i - 1]) + frac * (np.log(self.bpp[i]) - np.log(self.bpp[i - 1]))))


def _default_bler() -> BlerSource:
    try:
        from sagin_hil.calibration.bler import BlerTable

        return BlerTable.load()
    except (ImportError, FileNotFoundError, OSError) as exc:
        log.warning("no measured BLER table (%s); using the Shannon-gap stand-in", exc)
        return ShannonGapBler()


def _default_modes() -> dict[str, dict[str, Any]]:
    """The measured rows of the stored mode table for the modes other than Mode 1, by flowgraph mode name
    ("mode3_1".., "jscc-1/12"..), a digital row with its bits per pixel; empty when there is no table."""
    from sagin_hil.codecs import modes

    try:
        table = modes.load_mode_table()
    except FileNotFoundError:
        return {}
    rows = {}
    for name, row in table["modes"].items():
        if name in modes.JSCC_MODES:
            rows[name] = row
        elif name != "1":
            rows[f"mode{name}"] = {**row, "bpp": row["bits"] / table["image_size"] ** 2}
    return rows


def relay_snr_db(hop_snr_db: list[float]) -> float:
    """End-to-end SNR of analog symbols amplified and forwarded hop by hop (each relay renormalises the
    noisy symbols to unit power): SNR' = SNR SNR_h / (SNR + SNR_h + 1)."""
    acc = math.inf
    for s_db in hop_snr_db:
        s = 10 ** (s_db / 10)
        acc = s if math.isinf(acc) else acc * s / (acc + s + 1)
    return 10 * math.log10(acc)


def _default_quality() -> RateQualityTable:
    # The stored, measured curve (codecs/weights/mode_table.json); measuring afresh takes seconds.
    from sagin_hil.codecs import modes

    try:
        return RateQualityTable.coerce(modes.load_mode_table()["j2k_rate_quality"])
    except (FileNotFoundError, KeyError) as exc:
        log.warning("no stored JPEG 2000 rate-quality table (%s); measuring it now", exc)
        return RateQualityTable.coerce(modes.j2k_rate_quality())


@register_controller("link-adaptation")
class LinkAdaptation(Controller):
    """Mode 1 link adaptation (module docstring).

    Parameters
    ----------
    bler_table: object with .bler(mcs_name, snr_db), or the path of a table written by
      `sagin-hil calibrate bler` (default: the shipped calibration BlerTable.load()).
    quality_table: rate-quality table in any form RateQualityTable.coerce accepts (default: the stored
      codecs.modes.load_mode_table()["j2k_rate_quality"], else a fresh codecs.modes.j2k_rate_quality()).
    target_bler: the block error rate an MCS may have at the hop's SNR.
    margin_db: SNR back-off for outdated measurements.
    compute_delay_s: encode + decode time of the mode.
    symbol_rate_hz: default per-hop symbol rate when state gives none.
    mode_table: {mode: row} for the modes other than Mode 1: a JSCC row has "ratio", "snr_db", "psnr_db",
      "compute_time_s"; a digital one "bpp", "psnr_db", "compute_time_s" (default: the stored mode table,
      codecs.modes.load_mode_table()).

    State keys read: route (list of link ids), predicted_snr_db {link: dB}, symbol_rate_hz (number or
    {link: Hz}), propagation_delay_s (number = total, or {link: s}), image_shape (H, W) if the task has
    no image, modes (allowed transmission modes, default ["mode1"]). After each call `last_decision` holds
    the chosen mode and its predicted delay, quality and SCC, and `candidates` every mode's prediction.
    """

    def __init__(self, bler_table: BlerSource | None = None, quality_table: Any = None, target_bler: float = 1e-2,
                 margin_db: float = 0.0, compute_delay_s: float = MODE1_COMPUTE_DELAY_S,
                 symbol_rate_hz: float = 1e6, mcs_table: tuple[Mcs, ...] = MCS_TABLE,
                 mode_table: dict[str, dict[str, Any]] | None = None):
        if not 0 < target_bler < 1:
            raise ValueError(f"target_bler = {target_bler!r} must lie in (0, 1)")
        if not symbol_rate_hz > 0:
            raise ValueError(f"symbol_rate_hz = {symbol_rate_hz!r} must be > 0")
        if isinstance(bler_table, (str, Path)):
            from sagin_hil.calibration.bler import BlerTable

            bler_table = BlerTable.load(bler_table)
        self.bler_table = bler_table if bler_table is not None else _default_bler()
        self.quality = RateQualityTable.coerce(quality_table) if quality_table is not None else _default_quality()
        self.target_bler, self.margin_db = target_bler, margin_db
        self.compute_delay_s, self.symbol_rate_hz = compute_delay_s, symbol_rate_hz
        self.mcs_table = tuple(sorted(mcs_table, key=lambda m: m.spectral_efficiency))
        self.mode_table = _default_modes() if mode_table is None else dict(mode_table)
        self.last_decision: dict[str, Any] = {}

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

    def _hop_snr(self, hop: str, reports: dict[str, LinkReport], state: dict[str, Any]) -> float | None:
        if hop in reports:
            return reports[hop].snr_db
        pred = state.get("predicted_snr_db", {})
        return float(pred[hop]) if hop in pred else None

    @staticmethod
    def _per_hop(value: Any, hop: str, default: float) -> float:
        if isinstance(value, dict):
            return float(value.get(hop, default))
        return default if value is None else float(value)

    def allocate(self, task: Task, reports: dict[str, LinkReport], state: dict[str, Any]) -> dict[str, Allocation]:
        route = list(state.get("route", []))
        if not route:
            raise ValueError("state['route'] is empty; give the hops the task crosses, "
                             "e.g. ['leo0->uav0', 'uav0->user0']")
        if task.image is not None:
            n_pixels = task.image.shape[0] * task.image.shape[1]
        else:
            h, w = state.get("image_shape", (512, 512))[:2]
            n_pixels = int(h) * int(w)
        modes = list(state.get("modes", ["mode1"]))
        unknown = [m for m in modes if m != "mode1" and m not in self.mode_table]
        if unknown:
            raise ValueError(f"state['modes'] has {unknown}, which this controller cannot predict; it knows "
                             f"mode1 and {sorted(self.mode_table) or 'no other mode (measure them: sagin-hil train modes)'}")
        snr = {hop: self._hop_snr(hop, reports, state) for hop in route}
        mcs = {hop: self.choose_mcs(snr[hop]) for hop in route}
        rates = {hop: self._per_hop(state.get("symbol_rate_hz"), hop, self.symbol_rate_hz) for hop in route}
        prop = state.get("propagation_delay_s", 0.0)
        prop_s = sum(float(prop.get(h, 0.0)) for h in route) if isinstance(prop, dict) else float(prop)
        # D(bpp) = d0 + slope * bpp
        slope = sum(n_pixels / (rates[h] * mcs[h].spectral_efficiency) for h in route)
        d0 = self.compute_delay_s + prop_s
        bpp = self._choose_bpp(task, d0, slope)
        delay = d0 + slope * bpp
        psnr = float(self.quality.psnr_at(bpp))
        scc = self._scc(task, delay, psnr)
        # a hop whose SNR is known and below even the chosen MCS's threshold: Mode 1 would deliver nothing
        delivers = all(s is None or self.bler_table.bler(mcs[h].name, s - self.margin_db) <= self.target_bler
                       for h, s in snr.items())
        candidates = {"mode1": {"bpp": bpp, "delay_s": delay, "psnr_db": psnr, "scc": scc, "delivers": delivers}}
        # analog modes see the route's amplify-and-forward SNR, known only when every hop's SNR is
        e2e_db = (relay_snr_db([snr[h] for h in route]) - self.margin_db
                  if all(s is not None for s in snr.values()) else None)
        for m in modes:
            row = self.mode_table.get(m)
            if row is not None and "snr_db" not in row:  # a digital semantic mode: fixed bits, Mode 1's MCS
                d = float(row["compute_time_s"]) + prop_s + slope * float(row["bpp"])
                candidates[m] = {"bpp": float(row["bpp"]), "delay_s": d, "psnr_db": float(row["psnr_db"]),
                                 "scc": self._scc(task, d, float(row["psnr_db"])), "delivers": delivers}
            elif row is not None and e2e_db is not None:
                candidates[m] = self._predict_jscc(row, task, n_pixels, e2e_db, rates, route, prop_s)
        allowed = {m: c for m, c in candidates.items() if m in modes}  # JSCC needs every hop's SNR
        usable = {m: c for m, c in allowed.items() if c["delivers"]} or allowed or {"mode1": candidates["mode1"]}
        mode = max(usable, key=lambda m: (usable[m]["scc"], usable[m]["psnr_db"]))
        best = candidates[mode]
        self.last_decision = {"mode": mode, **best, "snr_db": snr, "candidates": candidates,
                              "feasible": best["delay_s"] <= task.deadline_s and best["psnr_db"] >= task.quality_min_db}
        if "bpp" in best:  # digital: each hop its MCS, the budget in bits per pixel
            return {hop: Allocation(mode=mode, mcs=m.name, modulation=m.modulation, code_rate=m.code_rate,
                                    bandwidth_hz=rates[hop], compression=best["bpp"]) for hop, m in mcs.items()}
        side = self.mcs_table[0]  # an analog mode uses no MCS; the most robust one is the safe placeholder
        return {hop: Allocation(mode=mode, mcs=side.name, modulation=side.modulation, code_rate=side.code_rate,
                                bandwidth_hz=rates[hop], compression=best["ratio"]) for hop in route}

    @staticmethod
    def _scc(task: Task, delay_s: float, psnr_db: float) -> float:
        return float(scc_weights(np.array([delay_s]), np.array([psnr_db]), np.array([task.deadline_s]),
                                 np.array([task.quality_min_db]), task.weight_quality)[0])

    def _predict_jscc(self, row: dict[str, Any], task: Task, n_pixels: int, e2e_snr_db: float,
                      rates: dict[str, float], route: list[str], prop_s: float) -> dict[str, Any]:
        """Predicted delay, quality and SCC of a JSCC mode (its mode-table row) at the route's end-to-end SNR."""
        ratio = float(Fraction(str(row["ratio"])))
        n_symbols = ratio * 3 * n_pixels
        delay = float(row["compute_time_s"]) + prop_s + sum(n_symbols / rates[h] for h in route)
        psnr = float(np.interp(e2e_snr_db, row["snr_db"], row["psnr_db"]))
        return {"ratio": ratio, "delay_s": delay, "psnr_db": psnr, "scc": self._scc(task, delay, psnr),
                "delivers": True, "e2e_snr_db": e2e_snr_db}

    def _choose_bpp(self, task: Task, d0: float, slope: float) -> float:
        lo_tab, hi_tab = float(self.quality.bpp[0]), float(self.quality.bpp[-1])
        bpp_deadline = (task.deadline_s - d0) / slope
        bpp_quality = self.quality.bpp_for(task.quality_min_db)
        lo, hi = max(bpp_quality, lo_tab), min(bpp_deadline, hi_tab)
        if lo > hi:  # cannot meet both: keep the deadline if possible, with the best quality it allows
            return float(np.clip(bpp_deadline, lo_tab, hi_tab))
        grid = np.unique(np.concatenate([np.geomspace(lo, hi, 65), self.quality.bpp[(self.quality.bpp >= lo)
                                                                                   & (self.quality.bpp <= hi)]]))
        w = scc_weights(d0 + slope * grid, self.quality.psnr_at(grid), np.full(grid.shape, task.deadline_s),
                        np.full(grid.shape, task.quality_min_db), task.weight_quality)
        return float(grid[int(np.argmax(w))])
