"""What the learned policies see of one slot's decision: per window task, its options (candidate route x mode),
each described by a feature vector built from the link abstraction's prediction (controllers/abstraction.py).

The same `option_features` serves both fidelities: `world_options` builds the options of every window task of
a SaginWorld at once (training, evaluation), `state_options` those of a ControllerState (the controller at
sample level, from measured or predicted SNRs). Features use only physical quantities (SNR, predicted delay,
quality and SCC, waiting on busy transmitters), never node indices, so a policy trained on one scenario can
act on another with other counts of LEOs, UAVs, users or modes.

Conventions shared by both paths: a task's deadline is what is left of D_max now (the ControllerState's
convention); the predicted delay counts from now (queueing on the route's transmitters + the prediction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagin_hil.controllers.abstraction import CANDIDATE_UAVS, Predictor, SaginWorld
from sagin_hil.controllers.scc import scc_weights

__all__ = ["FEATURES", "N_FEATURES", "option_features", "world_options", "WorldOptions", "state_options",
           "add_shared_features",
           "uav_features", "N_UAV_FEATURES", "uav_snr_db", "WAIT"]

FEATURES = ("pred_scc", "delivers", "delay_over_deadline", "quality_margin", "meets_quality", "via_isl",
            "snr_isl", "snr_leo_uav", "snr_uav_user", "queue_over_deadline", "log_bpp", "deadline", "waited",
            "uav_rank", "wait", "scc_now", "others_scc", "others_tasks")
SCC_NOW = FEATURES.index("scc_now")
TASKS_SCALE = 8.0  # others_tasks counts other window tasks in units of the default window
N_FEATURES = len(FEATURES)
WAIT = -1  # option code of "hold the task for a later slot"
SNR_SCALE_DB = 50.0
DELAY_SCALE_S = 11.0


def option_features(pred: dict[str, np.ndarray], snr_db: np.ndarray, hop_on: np.ndarray, queue_s: np.ndarray,
                    deadline_left_s: np.ndarray, q_min_db: np.ndarray, xi_q: float, waited_s: np.ndarray,
                    uav_rank: np.ndarray) -> np.ndarray:
    """Feature rows [..., N_FEATURES] of options from Predictor.predict's output `pred` on the same [...] shape.

    snr_db, hop_on [..., 3]: ISL, LEO -> UAV, UAV -> user; queue_s: waiting on the route's busy transmitters;
    deadline_left_s: what is left of D_max; waited_s: time the task has waited; uav_rank: 0 for the user's
    nearest UAV, 1 for the next."""
    delay = pred["delay_s"] + queue_s
    psnr = np.where(pred["delivers"], pred["psnr_db"], np.nan)
    scc = scc_weights(delay, psnr, deadline_left_s, q_min_db, xi_q)
    # Eq. 14 as the environment scores it: the whole D_max, the delay counted from the task's arrival
    scc_now = scc_weights(delay + waited_s, psnr, deadline_left_s + waited_s, q_min_db, xi_q)
    snr = np.where(hop_on, np.clip(np.nan_to_num(snr_db, nan=-SNR_SCALE_DB, neginf=-SNR_SCALE_DB),
                                   -SNR_SCALE_DB, SNR_SCALE_DB) / SNR_SCALE_DB, -1.0)
    margin = np.clip(np.nan_to_num((pred["psnr_db"] - q_min_db) / SNR_SCALE_DB, nan=-1.0), -1.0, 1.0)
    cols = [scc, pred["delivers"].astype(float), np.clip(delay / deadline_left_s, 0.0, 2.0), margin,
            (pred["psnr_db"] >= q_min_db).astype(float), hop_on[..., 0].astype(float), snr[..., 0], snr[..., 1],
            snr[..., 2], np.clip(queue_s / deadline_left_s, 0.0, 2.0),
            np.log2(np.maximum(pred["bits_per_pixel"], 1e-3)) / 8.0,
            np.minimum(deadline_left_s / DELAY_SCALE_S, 2.0), np.minimum(waited_s / DELAY_SCALE_S, 2.0),
            uav_rank.astype(float), np.zeros(np.shape(scc)), scc_now, np.zeros(np.shape(scc)), np.zeros(np.shape(scc))]
    return np.stack([np.broadcast_to(c, np.shape(scc)) for c in cols], -1).astype(np.float32)


def wait_features(shape: tuple[int, ...], deadline_left_s: np.ndarray, waited_s: np.ndarray) -> np.ndarray:
    """The row of the "wait" option: only the task's clock and the wait flag."""
    out = np.zeros((*shape, N_FEATURES), np.float32)
    out[..., FEATURES.index("deadline")] = np.minimum(deadline_left_s / DELAY_SCALE_S, 2.0)
    out[..., FEATURES.index("waited")] = np.minimum(waited_s / DELAY_SCALE_S, 2.0)
    out[..., FEATURES.index("wait")] = 1.0
    return out


@dataclass
class WorldOptions:
    """Options of every window task of a SaginWorld: O = CANDIDATE_UAVS x K x modes routes-and-modes, then
    "wait" (last). feats [E, W, O + 1, F]; valid [E, W, O + 1] (a candidate route; wait: a filled slot);
    uav, leo, mode [E, W, O]: what each option decides; src, user [E, W]: the tasks' source LEO and user."""

    feats: np.ndarray
    valid: np.ndarray
    uav: np.ndarray
    leo: np.ndarray
    mode: np.ndarray
    src: np.ndarray
    user: np.ndarray


def world_options(world: SaginWorld) -> WorldOptions:
    """The options of every window task of `world` now (training and evaluation path)."""
    w, tb, pr = world, world.tables, world.predictor
    E, K, Mm = w.E, w.K, len(w.modes)
    # the window's filled slots come first (oldest tasks first): predict only as many slots as are filled
    W = max(int(w.win_valid.sum(1).max()), 1)
    win_valid = w.win_valid[:, :W]
    R = min(CANDIDATE_UAVS, w.N)
    e = w._e[:, None, None, None, None]
    src, usr = w._take(w.source)[:, :W], w._take(w.user)[:, :W]  # [E, W]
    d = np.linalg.norm(w.uav_m[:, :, None, :] - tb.user_m[None, None, :, :], axis=-1)  # [E, N, M]
    order = np.argsort(d, axis=1, kind="stable")  # [E, rank, M]
    shape = (E, W, R, K, Mm)
    uav = np.broadcast_to(order[w._e[:, None], :R, usr][..., None, None], shape)  # [E, W, R] -> options
    leo = np.broadcast_to(np.arange(K)[None, None, None, :, None], shape)
    mode = np.broadcast_to(np.arange(Mm)[None, None, None, None, :], shape)
    s5 = np.broadcast_to(src[:, :, None, None, None], shape)
    u5 = np.broadcast_to(usr[:, :, None, None, None], shape)
    flat = (E, W * R * K * Mm)
    ok = w.route_ok(s5.reshape(flat), leo.reshape(flat), uav.reshape(flat), u5.reshape(flat)).reshape(shape)
    ok &= win_valid[:, :, None, None, None]
    i = w.i_t
    via = leo != s5
    snr = np.stack([np.where(via, tb.isl_snr_db[i][s5, leo], np.nan), w.sa_snr_db[e, leo, uav],
                    w.ag_snr_db[e, uav, u5]], -1)
    prop = np.stack([np.where(via, tb.isl_delay_s[i][s5, leo], 0.0), w.sa_delay_s[e, leo, uav],
                     w.ag_delay_s[e, uav, u5]], -1)
    hop_on = np.stack([via, np.ones(shape, bool), np.ones(shape, bool)], -1)
    rate = np.broadcast_to(np.array([w.rate_isl_hz, w.rate_sa_hz, w.rate_ag_hz]), snr.shape)
    waited = np.where(win_valid, w.t_s - w._take(w.arrival_s)[:, :W], 0.0)
    left = np.where(win_valid, np.maximum(w._take(w.deadline_s)[:, :W] - waited, 1e-6), 1.0)
    qm = w._take(w.q_min_db)[:, :W]
    img = w._take(w.image)[:, :W]
    b5 = lambda a: np.broadcast_to(a[:, :, None, None, None], shape)  # noqa: E731
    pred = pr.predict(mode, snr, rate, prop, hop_on, b5(left), b5(qm), w.weight_quality, active=ok,
                      curve_db=np.broadcast_to(w.pool_curve_db[img][:, :, None, None, None, :],
                                               (*shape, w.pool_curve_db.shape[1])),
                      mode_psnr_db=np.broadcast_to(w.pool_mode_psnr_db[img][:, :, None, None, None, :],
                                                   (*shape, Mm)),
                      analog_curve_db=None if w.pool_analog_curve_db is None else
                      w.pool_analog_curve_db[img][:, :, None, None, None])
    backlog = np.maximum(w.busy_until_s - w.t_s, 0.0)  # [E, K + N]
    q_src = backlog[e, s5]
    queue = np.maximum(np.where(via, q_src, 0.0), np.maximum(backlog[e, leo], backlog[e, K + uav]))
    queue = np.maximum(queue, q_src)
    rank = np.broadcast_to(np.arange(R)[None, None, :, None, None], shape)
    f = option_features(pred, snr, hop_on, queue, b5(left), b5(qm), w.weight_quality, b5(waited), rank)
    O = R * K * Mm
    f = f.reshape(E, W, O, -1)
    wait = wait_features((E, W, 1), left[..., None], waited[..., None])
    ok = ok.reshape(E, W, O)
    wait[..., 0] = np.where(ok, f[..., 0], 0.0).max(-1, keepdims=True)  # what waiting gives up now
    wait[..., SCC_NOW] = np.where(ok, f[..., SCC_NOW], 0.0).max(-1, keepdims=True)
    # what the other window tasks could earn through the same UAV and LEO (the slot's pairings are shared)
    best = np.where(ok, f[..., SCC_NOW], -1.0).reshape(E, W, R, K, Mm).max(-1)  # [E, W, R, K]
    own = np.full((E, W, w.N, K), -1.0)
    ee, jj, rr = np.meshgrid(np.arange(E), np.arange(W), np.arange(R), indexing="ij")
    own[ee, jj, uav[:, :, :, 0, 0][ee, jj, rr]] = best[ee, jj, rr]
    tot_scc, tot_n = np.maximum(own, 0.0).sum(1), (own >= 0).sum(1)  # [E, N, K]
    u_o, k_o = uav.reshape(E, W, O), leo.reshape(E, W, O)
    e_o, j_o = np.arange(E)[:, None, None], np.arange(W)[None, :, None]
    mine = own[e_o, j_o, u_o, k_o]
    f[..., FEATURES.index("others_scc")] = np.where(ok, (tot_scc[e_o, u_o, k_o] - np.maximum(mine, 0.0)) / 4.0, 0.0)
    f[..., FEATURES.index("others_tasks")] = np.where(ok, (tot_n[e_o, u_o, k_o] - (mine >= 0)) / TASKS_SCALE, 0.0)
    feats = np.concatenate([f, wait], 2)
    valid = np.concatenate([ok, win_valid[..., None]], 2)
    pad = w.W - W  # the empty slots: no options
    if pad:
        feats = np.pad(feats, ((0, 0), (0, pad), (0, 0), (0, 0)))
        valid = np.pad(valid, ((0, 0), (0, pad), (0, 0)))
        src, usr = np.pad(src, ((0, 0), (0, pad))), np.pad(usr, ((0, 0), (0, pad)))
    idx = lambda a: np.pad(a.reshape(E, W, O), ((0, 0), (0, pad), (0, 0)))  # noqa: E731
    return WorldOptions(feats, valid, idx(uav), idx(leo), idx(mode), src, usr)


N_UAV_FEATURES = 8
UAV_SNR = 5  # the uav_features column of the mean SNR to the users served


def uav_features(home_m: np.ndarray, uav_m: np.ndarray, user_m: np.ndarray, served: np.ndarray,
                 ag_snr_db: np.ndarray, v_max_mps: np.ndarray, alt_range_m: np.ndarray) -> np.ndarray:
    """Per UAV [..., N, N_UAV_FEATURES] for the waypoint head: offset from its home and from the centroid of the
    users it is nearest to (in units of 100 s of flight), its altitude in its range, and the mean SNR to them.

    home_m, uav_m [..., N, 3]; user_m [M, 3]; served [..., N, M] bool; ag_snr_db [..., N, M];
    alt_range_m [N, 2] (min, max)."""
    reach = (100.0 * v_max_mps)[:, None]
    cnt = served.sum(-1, keepdims=True)
    cen = np.where(cnt > 0, (served[..., None] * user_m[..., :2]).sum(-2) / np.maximum(cnt, 1), home_m[..., :2])
    snr = np.where(served, ag_snr_db, 0.0).sum(-1) / np.maximum(cnt[..., 0], 1)
    span = np.maximum(alt_range_m[:, 1] - alt_range_m[:, 0], 1e-9)
    cols = [(uav_m[..., :2] - home_m[..., :2]) / reach, (cen - uav_m[..., :2]) / reach,
            ((uav_m[..., 2] - alt_range_m[:, 0]) / span)[..., None], (snr / SNR_SCALE_DB)[..., None],
            (cnt / max(user_m.shape[0], 1)), np.ones_like(cnt, dtype=float)]
    return np.clip(np.concatenate(cols, -1), -4.0, 4.0).astype(np.float32)


def uav_snr_db(uav_feats: np.ndarray) -> np.ndarray:
    """The mean SNR (dB) from each UAV to the users it serves, read back from uav_features [..., N]."""
    return uav_feats[..., UAV_SNR] * SNR_SCALE_DB


def state_options(state, predictor: Predictor, busy_until_s: dict[str, float] | None = None, tasks=None):
    """Options of every task of a ControllerState (deployment path), in the task order of `state.tasks`.

    Returns a list, per task (of `tasks`, default all), of (options, feats [n + 1, F], prediction) where
    options[i] = (Route, mode name), the last row is "wait" and prediction is Predictor.predict's per option. busy_until_s: node -> when its transmitter is free (the controller's own record)."""
    busy = busy_until_s or {}
    rows = []
    now = state.time_s
    for task in (state.tasks if tasks is None else tasks):
        routes = state.routes[task.task_id]
        user = state.positions_m.get(task.destination)
        dist = [np.linalg.norm(np.subtract(state.positions_m[r.uav], user)) if user is not None and
                r.uav in state.positions_m else 0.0 for r in routes]
        uavs = sorted({r.uav for r in routes}, key=lambda u: (dist[[r.uav for r in routes].index(u)], u))
        opts, snr, hop_on, prop, rate, queue, rank = [], [], [], [], [], [], []
        for r in routes:
            links = r.links
            isl = r.isl_hops[0] if r.isl_hops else None
            sa, ag = links[-2], links[-1]
            s = [state.snr_db(isl) if isl else np.nan, state.snr_db(sa), state.snr_db(ag)]
            s = [(-SNR_SCALE_DB if v is None else v) if k or isl else np.nan for k, v in enumerate(s)]
            p = [float(state.propagation_delay_s.get(h, 0.0)) if h else 0.0 for h in (isl, sa, ag)]
            rt = [state.symbol_rate_hz(h) if h else 1.0 for h in (isl, sa, ag)]
            q = max(max(busy.get(n, now) - now, 0.0) for n in r.nodes[:-1])
            for m, name in enumerate(state.modes):
                opts.append((r, name))
                snr.append(s)
                hop_on.append([isl is not None, True, True])
                prop.append(p)
                rate.append(rt)
                queue.append(q)
                rank.append(min(uavs.index(r.uav), CANDIDATE_UAVS - 1))
        mode_idx = np.array([predictor.modes.index(name) for _, name in opts], np.intp)
        n = len(opts)
        curve = mode_psnr = analog = None
        if task.quality is not None:
            curve = np.broadcast_to(np.asarray(task.quality.psnr_db, float), (n, len(task.quality.psnr_db)))
            mode_psnr = np.broadcast_to(np.array([task.quality.mode_psnr_db.get(m, np.nan) for m in predictor.modes]),
                                        (n, len(predictor.modes)))
            analog = predictor.analog_curves_of([task.quality])
        left = np.full(n, max(float(task.deadline_s), 1e-6))
        qm = np.full(n, float(task.quality_min_db))
        snr_a, hop_a = np.array(snr, float), np.array(hop_on, bool)
        pred = predictor.predict(mode_idx, snr_a, np.array(rate, float), np.array(prop, float), hop_a, left, qm,
                                 task.weight_quality, curve_db=curve, mode_psnr_db=mode_psnr, analog_curve_db=analog)
        waited = np.full(n, max(now - task.arrival_s, 0.0))
        f = option_features(pred, snr_a, hop_a, np.array(queue, float), left, qm, task.weight_quality, waited,
                            np.array(rank))
        wait = wait_features((1,), left[:1], waited[:1])
        wait[0, 0] = f[:, 0].max(initial=0.0)
        wait[0, SCC_NOW] = f[:, SCC_NOW].max(initial=0.0)
        f = np.concatenate([f, wait], 0)
        rows.append((opts, f, pred))
    if tasks is None:
        add_shared_features(rows)
    return rows


def add_shared_features(rows) -> None:
    """Fill others_scc / others_tasks of state_options' rows (all tasks of one slot, in place): what the other
    tasks could earn through each option's UAV and LEO, as world_options computes it."""
    best = []
    for opts, f, _ in rows:
        b: dict[tuple[str, str], float] = {}
        for (r, _), v in zip(opts, f[:-1, SCC_NOW]):
            b[(r.uav, r.leo)] = max(b.get((r.uav, r.leo), -1.0), float(v))
        best.append(b)
    tot_scc: dict[tuple[str, str], float] = {}
    tot_n: dict[tuple[str, str], int] = {}
    for b in best:
        for key, v in b.items():
            tot_scc[key] = tot_scc.get(key, 0.0) + max(v, 0.0)
            tot_n[key] = tot_n.get(key, 0) + 1
    for (opts, f, _), b in zip(rows, best):
        for i, (r, _) in enumerate(opts):
            key = (r.uav, r.leo)
            f[i, FEATURES.index("others_scc")] = (tot_scc[key] - max(b[key], 0.0)) / 4.0
            f[i, FEATURES.index("others_tasks")] = (tot_n[key] - 1) / TASKS_SCALE
