"""JCRRA in the loop: each frame, every user's image as deep-JSCC symbols at a ratio and power JCRRA chose.

The frame's tasks are the users; the band of the satellite's hop is cut into `subchannels` equal shares and
the frame into `slots` slots (default: the fewest that give every user a share, ceil(U / S)), each long
enough for the smallest deadline's share. Each user's SNR per watt on a share comes from the latest report of
its satellite hop (the probe at nominal power and bandwidth) or, with snr_from = "ephemeris" (or no report),
from the ephemeris' prediction, less `margin_db`, scaled to the share's symbol rate. The SSIM targets come
from the stored surface: the mean's ([P002]'s expected SSIM) or, with `ssim_quantile` = 0.1, the SSIM 90 % of
images reach, so that each user's own image rather than the average one meets its requirement. A task's route ends in a relay (terminal -> user, amplify and forward): its last hop's SNR is
known, so the satellite hop must give gamma_1 = 1 / (1 / gamma - 1 / gamma_2) for an end-to-end gamma (one
more hop of phy.theory.relay_snr_db). JCRRA (controllers/jcrra.py) then picks each user's ratio among the
allowed JSCC modes, its share and its power under the satellite's budget. Each task's SSIM requirement is
drawn from `ssim_min` by its task id and kept, with the predicted SSIM, in the allocation's `predicted`, so
the report sets the measured SSIM beside it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagin_hil.controllers.base import Controller, ControllerOptionError, fallback_allocation
from sagin_hil.datatypes import Allocation, ControllerState, HopAllocation, Plan

__all__ = ["JcrraController"]


class JcrraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subchannels: int = Field(4, ge=1, le=64, description="equal shares of the satellite hop's band (S)")
    power_budget_dbw: float = Field(17.0, description="the satellite's power budget over all shares, dBW")
    ssim_min: tuple[float, float] = Field((0.80, 0.85), description="each task's SSIM requirement, drawn in "
                                          "[lo, hi] by its task id")
    margin_db: float = Field(1.0, ge=0, le=20, description="SNR margin over the surface's target (estimation "
                             "error, images unlike the surface's)")
    band_hz: float | None = Field(None, gt=0, description="the satellite hop's band; default its nominal one")
    slots: int | None = Field(None, ge=1, le=64, description="slots per frame; default ceil(users / subchannels)")
    surface: str | None = Field(None, description="an SSIM surface JSON; default the shipped one")
    ssim_quantile: float | None = Field(None, description="plan with the surface of this quantile over images "
                                        "(0.1: the SSIM 90 % of images reach); None: the mean, as [P002]")
    snr_from: Literal["report", "ephemeris"] = Field("report", description="each satellite hop's SNR: the latest "
                                                     "probe report, or the ephemeris' prediction (no fading; "
                                                     "margin_db then covers the fade)")

    @model_validator(mode="after")
    def _range(self) -> "JcrraOptions":
        lo, hi = self.ssim_min
        if not 0 < lo <= hi < 1:
            raise ValueError(f"ssim_min = {list(self.ssim_min)} must be [lo, hi] with 0 < lo <= hi < 1, e.g. [0.80, 0.85]")
        from sagin_hil.calibration.ssim_surface import load_surface

        try:  # a surface or quantile that is not there is named when the flowgraph is checked
            load_surface(self.surface, self.ssim_quantile)
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None
        return self


def _ssim_min(task_id: int, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * np.random.default_rng([task_id, 2002]).random())


class JcrraController(Controller):
    """[P002]'s JCRRA as a controller (see the module docstring). It chooses among the analog JSCC modes
    ("jscc-1/12", "jscc-1/6") of the flowgraph's [controller] modes; with none allowed it hands the frame to
    link adaptation and says so in each task's trail."""

    Options = JcrraOptions

    def __init__(self, subchannels: int = 4, power_budget_dbw: float = 17.0, ssim_min=(0.80, 0.85),
                 margin_db: float = 1.0, band_hz: float | None = None, slots: int | None = None,
                 surface: str | None = None, ssim_quantile: float | None = None, snr_from: str = "report") -> None:
        from sagin_hil.calibration.ssim_surface import load_surface

        lo, hi = (float(v) for v in ssim_min)
        if not 0 < lo <= hi < 1:
            raise ValueError(f"jcrra: ssim_min = {ssim_min!r} must be [lo, hi] with 0 < lo <= hi < 1")
        self.subchannels, self.budget_w = subchannels, 10 ** (power_budget_dbw / 10)
        self.ssim_range, self.margin_db, self.band_hz, self.slots = (lo, hi), margin_db, band_hz, slots
        try:
            self.surface = load_surface(surface, ssim_quantile)
        except (FileNotFoundError, ValueError) as exc:
            raise ControllerOptionError(f"controller 'jcrra': {exc}") from None
        self.snr_from = snr_from

    def allocate(self, state: ControllerState) -> Plan:
        from sagin_hil.codecs.modes import MODES
        from sagin_hil.controllers.jcrra import JcrraProblem, jcrra

        modes = sorted((m for m in state.modes if m in MODES and MODES.get(m).analog),
                       key=lambda m: MODES.get(m).bandwidth_ratio())
        if not modes:  # no ratio to choose: the digital modes go to link adaptation, and the trail says so
            from sagin_hil.controllers.link_adaptation import LinkAdaptation

            plan = LinkAdaptation().allocate(state)
            for tid in plan.allocations:
                plan.trail[tid] = {**plan.trail.get(tid, {}), "jcrra": "no JSCC mode allowed ([controller] modes = "
                                   f"{state.modes}); link adaptation planned it. Add \"jscc-1/12\", \"jscc-1/6\"."}
            return plan
        ratios = tuple(MODES.get(m).bandwidth_ratio() for m in modes)
        tasks = list(state.tasks)
        S = self.subchannels
        T = self.slots or max(1, -(-len(tasks) // S))
        routes = {t.task_id: state.routes[t.task_id][0] for t in tasks}
        gain, tail, sym = np.zeros((len(tasks), S, T)), np.zeros(len(tasks)), np.zeros(len(tasks))
        share_hz = {}
        for i, t in enumerate(tasks):
            route = routes[t.task_id]
            first, *rest = route.links
            band = self.band_hz or state.bandwidth_hz.get(first, 10e6)
            share_hz[t.task_id] = band / S
            rs_nominal = state.bandwidth_hz.get(first, band) / (1 + state.rolloff)
            rs_share = band / S / (1 + state.rolloff)
            snr_db = self._snr_db(state, first)
            p_nominal = state.power_w.get(route.source, 1.0)
            gain[i] = 10 ** ((snr_db - self.margin_db) / 10) / p_nominal * rs_nominal / rs_share
            # later hops (amplify and forward at their nominal power): their combined SNR
            tail[i] = math.inf
            for lid in rest:
                g = 10 ** (self._snr_db(state, lid) / 10)
                tail[i] = g if math.isinf(tail[i]) else tail[i] * g / (tail[i] + g + 1)
            sym[i] = rs_share / T * max(t.deadline_s - sum(state.propagation_delay_s.get(lid, 0.0) for lid in route.links),
                                    1e-6)
        q = np.array([_ssim_min(t.task_id, *self.ssim_range) for t in tasks])
        n_values = np.array([3 * t.n_pixels for t in tasks], float)
        plan = Plan({})
        problem = JcrraProblem(gain=gain, ratios=ratios, source_values=n_values, ssim_min=q,
                               delay_slots=np.full(len(tasks), T), symbols_per_slot=float(sym.min()),
                               power_budget_w=self.budget_w, surface=self.surface)
        target = np.stack([10 ** (problem.snr_db_target(np.full(len(tasks), r)) / 10) for r in ratios], 1)  # (U, M)
        need_first = np.where(target < tail[:, None],  # gamma_1 for the end-to-end gamma, (U, M)
                              1.0 / np.maximum(1.0 / target - 1.0 / tail[:, None], 1e-30), np.inf)
        # plan on the satellite hop's gain deflated by the relay's worst factor over the options, then set each
        # chosen option's exact power
        factor = np.max(need_first / target, axis=1)
        best = jcrra(JcrraProblem(gain=gain / factor[:, None, None], ratios=ratios, source_values=n_values,
                                  ssim_min=q, delay_slots=np.full(len(tasks), T), symbols_per_slot=float(sym.min()),
                                  power_budget_w=self.budget_w, surface=self.surface))
        best = best if best.feasible else None
        for i, t in enumerate(tasks):
            route = routes[t.task_id]
            if best is None or not best.assign[i].any():
                plan.allocations[t.task_id] = fallback_allocation(t.task_id, route, mode=modes[0])
                plan.trail[t.task_id] = {"choice": modes[0], "why": "JCRRA found no feasible allocation: "
                                         + str((best.info if best else {}).get("why", "infeasible"))}
                continue
            m = int(best.option[i])
            sub, slot = (int(v[0]) for v in np.nonzero(best.assign[i]))
            power_w = float(need_first[i, m] / gain[i, sub, slot])
            hops = {lid: HopAllocation(mcs="analog") for lid in route.links}
            hops[route.links[0]] = HopAllocation(mcs="analog", power_w=power_w, bandwidth_hz=share_hz[t.task_id])
            s_db = float(problem.snr_db_target(np.full(len(tasks), ratios[m]))[i])
            plan.allocations[t.task_id] = Allocation(
                t.task_id, route, mode=modes[m], bandwidth_ratio=float(Fraction(ratios[m]).limit_denominator(1000)),
                hops=hops, predicted={"ssim_min": float(q[i]), "ssim": float(self.surface.ssim(ratios[m], s_db)),
                                      "snr_db": s_db, "power_w": power_w, "subchannel": float(sub), "slot": float(slot)})
            plan.trail[t.task_id] = {"choice": modes[m], "why": f"JCRRA: ratio {modes[m]} at {power_w:.3g} W on "
                                     f"share {sub} of {S}, slot {slot} of {T}, for SSIM >= {q[i]:.3f}"}
        return plan

    def _snr_db(self, state: ControllerState, link: str) -> float:
        rep = state.reports.get(link)
        if self.snr_from == "report" and rep is not None and rep.snr_db > -50:
            return float(rep.snr_db)
        return float(state.predicted_snr_db.get(link, -50.0))
