"""One slot's hybrid action, from option scores to Eq. 17 (docs/rl.md, "The hybrid action").

Window tasks are decided oldest first (those no option can earn anything for last). Each takes one of its options (a candidate route with a mode, or wait)
among those consistent with the pairings the earlier tasks of the slot fixed: a UAV keeps one LEO (15a), a
user one UAV (15b), a source LEO one ISL (15c). The pairings chosen become Eq. 17's L(t), R(t), Y(t) and the
options' modes its epsilon(t); UAVs and users no task needed keep the environment's defaults (highest LEO,
nearest UAV). "Wait" holds a task for a later slot by pairing its user with a UAV outside its candidates
(the environment then keeps the task queued), so it is offered only while no earlier task of the slot has
given that user a UAV. An option predicted to earn nothing (SCC 0 now: a hop below the BLER target, a
missed deadline or floor) is not offered, since dispatching it only takes pairings from tasks that can
earn. The waypoints O(t) come from the continuous head.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sagin_hil.controllers.abstraction import SaginWorld
from sagin_hil.controllers.rl.features import SCC_NOW, WorldOptions, uav_features

__all__ = ["decide_world", "world_uav_features", "SlotDecision"]


class SlotDecision:
    """choice [E, W]: option index per window task (A - 1 = wait; -1 = no task or nothing allowed);
    mask [E, W, A]: the options offered to each task; action: the Eq. 17 Dict with an [E] axis."""

    def __init__(self, choice, mask, action):
        self.choice, self.mask, self.action = choice, mask, action


def world_uav_features(world: SaginWorld) -> np.ndarray:
    """uav_features of every UAV of every environment [E, N, F_u] (users served = those it is nearest to)."""
    tb = world.tables
    d = np.linalg.norm(world.uav_m[:, :, None, :] - tb.user_m[None, None], axis=-1)
    served = np.argmin(d, axis=1)[:, None, :] == np.arange(world.N)[None, :, None]
    home = np.broadcast_to(tb.uav_home_m, world.uav_m.shape)
    return uav_features(home, world.uav_m, tb.user_m, served, world.ag_snr_db, tb.v_max_mps,
                        np.stack([tb.alt_min_m, tb.alt_max_m], -1))


def decide_world(world: SaginWorld, wo: WorldOptions, score: Callable[[np.ndarray], np.ndarray],
                 pick: Callable[[np.ndarray, np.ndarray], np.ndarray], waypoint: np.ndarray | None = None,
                 allow_wait: bool = True) -> SlotDecision:
    """Decide every window task of every environment. score(feats [E, A, F]) -> logits [E, A];
    pick(logits, mask) -> option index per row (-1 when the mask is empty); waypoint [E, N, 3] or None (hover)."""
    w, tb = world, world.tables
    E, W, A = wo.valid.shape
    O = A - 1
    e = w._e
    d = np.linalg.norm(w.uav_m[:, :, None, :] - tb.user_m[None, None], axis=-1)  # [E, N, M]
    nearest = np.argmin(d, axis=1)
    blocker = np.argmax(d, axis=1) if w.N > 2 else None  # a UAV outside every user's two candidates
    leo_of_uav = np.full((E, w.N), -1)
    uav_of_user = np.full((E, w.M), -1)
    isl_of = np.full((E, w.K), -1)
    choice = np.full((E, W), -1)
    mask = np.zeros((E, W, A), bool)
    mode = np.zeros((E, W), np.int64)
    hopeless = ~np.any(wo.valid[..., :O] & (wo.feats[..., :O, SCC_NOW] > 0), axis=-1)  # [E, W]
    # tasks that can earn first (oldest first), then the others; a stable order per environment
    order = np.argsort(hopeless, axis=1, kind="stable")
    for step in range(W):
        j_e = order[:, step]
        src, usr = wo.src[e, j_e], wo.user[e, j_e]
        uav, leo = wo.uav[e, j_e], wo.leo[e, j_e]
        lu = leo_of_uav[e[:, None], uav]
        uu = uav_of_user[e, usr][:, None]
        il = isl_of[e, src][:, None]
        via = leo != src[:, None]
        fits = (((lu < 0) | (lu == leo)) & ((uu < 0) | (uu == uav)) & (~via | (il < 0) | (il == leo)))
        m = np.zeros((E, A), bool)
        m[:, :O] = wo.valid[e, j_e, :O] & fits
        if allow_wait and blocker is not None:
            # a task no option can earn anything for is not held: it would only keep a window slot from a
            # newer task until it expires (it goes after the tasks that can earn, so it takes no pairing of theirs)
            m[:, O] = (wo.valid[e, j_e, O] & ((uav_of_user[e, usr] < 0) | (uav_of_user[e, usr] == blocker[e, usr]))
                       & ~hopeless[e, j_e])
        live = wo.valid[e, j_e, O]
        m &= live[:, None]
        mask[e, j_e] = m
        if not m.any():
            continue
        c = pick(score(wo.feats[e, j_e]), m)
        choice[e, j_e] = c
        go = (c >= 0) & (c < O)
        k = np.where(go, c, 0)
        l_all, u_all, m_all = leo[e, k], uav[e, k], wo.mode[e, j_e, k]
        ee = e[go]
        leo_of_uav[ee, u_all[go]] = l_all[go]
        uav_of_user[ee, usr[go]] = u_all[go]
        v = go & (l_all != src)
        isl_of[e[v], src[v]] = l_all[v]
        mode[e[go], j_e[go]] = m_all[go]
        hold = c == O
        if blocker is not None and hold.any():
            uav_of_user[e[hold], usr[hold]] = blocker[e[hold], usr[hold]]
    uav_leo = np.where(leo_of_uav >= 0, leo_of_uav, np.argmax(w.sa_elev_deg, axis=1))
    user_uav = np.where(uav_of_user >= 0, uav_of_user, nearest)
    isl = np.where(isl_of >= 0, isl_of, np.arange(w.K)[None])
    move = np.zeros((E, w.N, 3), np.float32) if waypoint is None else np.asarray(waypoint, np.float32)
    action = {"uav_leo": uav_leo.astype(np.int64), "user_uav": user_uav.astype(np.int64),
              "isl": isl.astype(np.int64), "mode": mode, "waypoint": move}
    return SlotDecision(choice, mask, action)
