"""The learned policies as registered controllers ("dsac", "mappo"): allocate(ControllerState) -> Plan, so they
run in `sagin-hil run` at sample level over the control plane exactly like the other controllers.

The policy chooses each task's route and mode (and the UAVs' moves); link adaptation fills in what the
environment also derives from them: the MCS per hop and Mode 1's budget (controllers/link_adaptation.py).
At sample level the runner plans each task once, when it arrives, so DSAC's "wait" option is not offered.
Controller time-outs fall back to the plane's safe plan (controllers/plane.py), as for every controller.
"""

from __future__ import annotations

import copy

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sagin_hil.controllers.abstraction import CANDIDATE_UAVS, Predictor
from sagin_hil.controllers.base import Controller
from sagin_hil.controllers.constraints import Pairings
from sagin_hil.datatypes import ControllerState, Plan, Route

__all__ = ["DsacController", "MappoController", "LearnedOptions"]

DEFAULT_PIXELS = 512 * 512


class LearnedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str | None = Field(None, description="policy safetensors (default: the shipped weights of the algorithm)")
    hover: bool = Field(True, description="keep the UAVs where they are: the waypoint heads learned no move that "
                        "gains SCC here, and at sample level every move delays the frame (docs/rl.md)")
    slot_s: float = Field(1.0, gt=0, description="seconds a move lasts: the policy moves a UAV v_max x slot_s")
    min_move_m: float = Field(2.0, ge=0, description="shorter moves are not flown: the runner holds a frame's "
                              "tasks until the UAVs arrive, so a move must be worth its flight time")


class _Learned(Controller):
    algo = ""
    Options = LearnedOptions

    def __init__(self, weights: str | None = None, hover: bool = True, slot_s: float = 1.0, min_move_m: float = 2.0):
        from sagin_hil.controllers.link_adaptation import LinkAdaptation
        from sagin_hil.controllers.rl.policy import load_policy

        self.policy = load_policy(self.algo, weights)
        self.hover, self.slot_s, self.min_move_m = bool(hover), float(slot_s), float(min_move_m)
        self._la = LinkAdaptation()
        self._predictors: dict[tuple, Predictor] = {}
        self.reset()

    def reset(self) -> None:
        self._busy: dict[str, float] = {}
        self._home: dict[str, tuple[float, ...]] = {}

    def _rows(self, state: ControllerState, task):
        from sagin_hil.controllers.rl.features import state_options

        key = (tuple(state.modes), task.n_pixels or DEFAULT_PIXELS)
        if key not in self._predictors:
            self._predictors[key] = Predictor(state.modes, bler_table=self._la.bler_table, n_pixels=key[1])
        return state_options(state, self._predictors[key], self._busy, tasks=[task])[0]

    def _carry(self, state: ControllerState, task, route: Route, mode: str, why: str, plan: Plan,
               air_s: np.ndarray, encode_s: float) -> None:
        """Link adaptation's MCS and budget for the chosen route and mode; the transmitters' busy times."""
        one = copy.copy(state)
        one.modes = [mode]
        alloc, trail = self._la._route(task, route, one)
        trail["why"] = f"{self.algo}: {why}; {trail['why']}"
        plan.allocations[task.task_id], plan.trail[task.task_id] = alloc, trail
        ready = state.time_s + encode_s
        isl = bool(route.isl_hops)
        for h, tx in enumerate((route.nodes[0] if isl else None, route.leo, route.uav)):
            if tx is not None and air_s[h] > 0:
                ready = max(ready, self._busy.get(tx, state.time_s)) + float(air_s[h])
                self._busy[tx] = ready

    def _users(self, state: ControllerState) -> list[str]:
        return sorted(n for n, p in state.positions_m.items() if n not in state.uav_limits and abs(p[2]) < 1e4)

    def _waypoints(self, state: ControllerState, moves: dict[str, np.ndarray]) -> dict[str, tuple[float, ...]]:
        out = {}
        for uav, mv in moves.items():
            lo, hi, v_max = state.uav_limits[uav]
            x, y, z = state.positions_m[uav]
            step = np.asarray(mv, float) * v_max * self.slot_s
            n = float(np.linalg.norm(step))
            if n > v_max * self.slot_s:
                step *= v_max * self.slot_s / n
            if min(n, v_max * self.slot_s) < self.min_move_m:
                continue
            out[uav] = (x + step[0], y + step[1], float(np.clip(z + step[2], lo, hi)))
        return out

    def _uav_feats(self, state: ControllerState, uavs: list[str], users: list[str]) -> np.ndarray:
        from sagin_hil.controllers.rl.features import uav_features

        pos = np.array([state.positions_m[u] for u in uavs], float)
        for u, p in zip(uavs, pos):
            self._home.setdefault(u, tuple(p))
        home = np.array([self._home[u] for u in uavs], float)
        um = np.array([state.positions_m[m] for m in users], float).reshape(-1, 3)
        d = np.linalg.norm(pos[:, None] - um[None], axis=-1)
        served = (np.argmin(d, axis=0)[None] == np.arange(len(uavs))[:, None]) if len(users) else np.zeros((len(uavs), 0), bool)
        snr = np.array([[state.snr_db(f"{u}->{m}") if state.snr_db(f"{u}->{m}") is not None else -50.0
                         for m in users] for u in uavs], float).reshape(len(uavs), len(users))
        lim = np.array([state.uav_limits[u] for u in uavs], float)
        return uav_features(home, pos, um, served, snr, lim[:, 2], lim[:, :2])


class DsacController(_Learned):
    """DSAC ([P000] Sec. IV): per task the option (candidate route x mode) its actor scores highest among those
    keeping (15a)-(15c) with the tasks planned before it; UAV moves from its waypoint head."""

    name = "dsac"
    algo = "dsac"

    def allocate(self, state: ControllerState) -> Plan:
        from sagin_hil.controllers.rl.features import FEATURES, add_shared_features

        plan, pairings = Plan(), Pairings()
        rows = [self._rows(state, task) for task in state.tasks]
        add_shared_features(rows)
        # tasks no option can earn anything for go last, so they take no pairing from those that can
        S = FEATURES.index("scc_now")
        order = sorted(range(len(rows)), key=lambda i: not np.any(rows[i][1][:-1, S] > 0))
        for task, (opts, feats, pred) in ((state.tasks[i], rows[i]) for i in order):
            fits = np.array([pairings._fits(r) for r, _ in opts])
            mask = np.append(fits if fits.any() else np.ones(len(opts), bool), False)  # no waiting here
            logits = self.policy.score(feats)
            c = int(np.argmax(np.where(mask, logits, -np.inf)))
            p = np.exp(logits[mask] - logits[mask].max())
            route, mode = opts[c]
            pairings.take(route)
            why = f"option {c + 1} of {len(opts)} (route x mode), probability {p.max() / p.sum():.2f}"
            self._carry(state, task, route, mode, why, plan, pred["air_s"][c], float(pred["encode_s"][c]))
        uavs = sorted(u for u in state.uav_limits if u in state.positions_m)
        if uavs and not self.hover:
            mv = self.policy.move(self._uav_feats(state, uavs, self._users(state)))
            plan.waypoints_m = self._waypoints(state, dict(zip(uavs, mv)))
        return plan


class MappoController(_Learned):
    """MAPPO ([P000]'s baseline): each UAV's agent picks its LEO, the users it claims and its tasks' modes;
    a task goes to its user's UAV (the lowest claiming agent, else the nearest) and that UAV's LEO, over an
    ISL when the LEO is not the source. When that route is not a candidate (the environment would hold the
    task) the first candidate keeping (15a)-(15c) is taken, since the runner plans each task once."""

    name = "mappo"
    algo = "mappo"

    def allocate(self, state: ControllerState) -> Plan:
        from sagin_hil.controllers.rl.features import FEATURES
        from sagin_hil.controllers.rl.mappo_features import agent_rows

        plan, pairings = Plan(), Pairings()
        uavs = sorted(u for u in state.uav_limits if u in state.positions_m)
        users = self._users(state)
        if not state.tasks or not uavs:
            return plan
        leos = sorted({t.source for t in state.tasks} | {a for a, _ in state.visible} |
                      {x for pair in state.isl for x in pair} | {r.leo for rs in state.routes.values() for r in rs})
        W, K, Mm, N = len(state.tasks), len(leos), len(state.modes), len(uavs)
        pos = np.array([state.positions_m[u] for u in uavs], float)
        um = np.array([state.positions_m[m] for m in users], float).reshape(-1, 3)
        d = np.linalg.norm(pos[:, None] - um[None], axis=-1)  # [N, M]
        rank = np.argsort(np.argsort(d, axis=0, kind="stable"), axis=0, kind="stable")
        R = min(CANDIDATE_UAVS, N)
        scc, valid = np.zeros((W, R, K, Mm)), np.zeros((W, R, K, Mm), bool)
        bpp = np.full((W, R, K, Mm), -1.0)
        task_uav = np.zeros((W, R), np.intp)
        task_user = np.array([users.index(t.destination) for t in state.tasks])
        rows = []
        for j, task in enumerate(state.tasks):
            order = np.argsort(d[:, task_user[j]], kind="stable")[:R]
            task_uav[j] = order
            opts, feats, pred = self._rows(state, task)
            rows.append((opts, pred))
            for i, (r, mode) in enumerate(opts):
                n = uavs.index(r.uav)
                if n in order:
                    q = (j, int(np.nonzero(order == n)[0][0]), leos.index(r.leo), state.modes.index(mode))
                    scc[q], valid[q] = feats[i, FEATURES.index("pred_scc")], True
                    bpp[q] = feats[i, FEATURES.index("log_bpp")]
        sa = np.full((K, N), -50.0)
        elev = np.zeros((K, N))
        for k, leo in enumerate(leos):
            for n, uav in enumerate(uavs):
                s = state.snr_db(f"{leo}->{uav}")
                sa[k, n] = -50.0 if s is None else s
                elev[k, n] = state.elevation_deg.get(f"{leo}->{uav}", 0.0)
        vis = np.array([[(leo, uav) in state.visible for uav in uavs] for leo in leos], bool)
        ag = np.array([[state.snr_db(f"{u}->{m}") if state.snr_db(f"{u}->{m}") is not None else -50.0
                        for m in users] for u in uavs], float)
        agent = agent_rows(scc, valid, bpp, task_uav, task_user, np.ones(W, bool), sa, vis, elev, ag, rank)
        agent["uav"] = self._uav_feats(state, uavs, users)
        leo_of, claims, mode_of, moves = self.policy.heads(agent)
        claimed = np.full(len(users), -1)
        for n in range(N):
            claimed[(claimed < 0) & claims[n]] = n
        for j, task in enumerate(state.tasks):
            m = task_user[j]
            n = int(claimed[m]) if claimed[m] >= 0 else int(np.argmin(d[:, m]))
            leo = leos[int(leo_of[n])]
            mode = state.modes[int(mode_of[n, j])]
            opts, pred = rows[j]
            want = [i for i, (r, md) in enumerate(opts) if r.uav == uavs[n] and r.leo == leo and md == mode]
            ok = [i for i in want if pairings._fits(opts[i][0])]
            if ok:
                i, why = ok[0], f"{uavs[n]}'s agent: {leo}, {mode}"
            else:
                allowed = pairings.allowed([r for r, md in opts if md == mode])
                i = next(k for k, (r, md) in enumerate(opts) if r == allowed[0] and md == mode)
                why = f"{uavs[n]}'s agent chose {leo}, not a candidate for this task: first allowed route, {mode}"
            route = opts[i][0]
            pairings.take(route)
            self._carry(state, task, route, mode, why, plan, pred["air_s"][i], float(pred["encode_s"][i]))
        if not self.hover:
            plan.waypoints_m = self._waypoints(state, dict(zip(uavs, moves)))
        return plan

