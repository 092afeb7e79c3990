"""What each MAPPO agent (one per UAV) sees: rows of features per choice of its PettingZoo action.

Agent n chooses "leo" (one row per LEO k), "users" (one row per user m), "mode" (one row per window task and
mode) and "waypoint" (its uav_features). The rows summarise the link abstraction's predictions of the window
tasks the agent could carry (controllers/rl/features.py), so the shared networks score choices of any count.
"""

from __future__ import annotations

import numpy as np

from sagin_hil.controllers.abstraction import CANDIDATE_UAVS
from sagin_hil.controllers.rl.features import SNR_SCALE_DB, WorldOptions

__all__ = ["agent_rows", "N_LEO_F", "N_USER_F", "N_MODE_F"]

N_LEO_F, N_USER_F, N_MODE_F = 5, 5, 4


def agent_rows(scc: np.ndarray, valid: np.ndarray, bpp: np.ndarray, task_uav: np.ndarray, task_user: np.ndarray,
               task_valid: np.ndarray, sa_snr_db: np.ndarray, sa_visible: np.ndarray, sa_elev_deg: np.ndarray,
               ag_snr_db: np.ndarray, user_rank: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of one environment. scc, valid, bpp [W, R, K, Mm]: each task's predicted SCC, candidacy and log-bpp
    feature through its r-th nearest UAV, LEO k and mode; task_uav [W, R]; task_user, task_valid [W];
    sa_* [K, N]; ag_snr_db [N, M]; user_rank [N, M] (0 = the user's nearest UAV).
    Returns leo [N, K, N_LEO_F], users [N, M, N_USER_F], mode [N, W, Mm, N_MODE_F], mode_mask [N, W], users_mask [N, M]."""
    W, R, K, Mm = scc.shape
    N, M = ag_snr_db.shape
    v = np.where(valid, scc, 0.0)
    mine = task_uav[None, :, :] == np.arange(N)[:, None, None]  # [N, W, R]
    via = np.where(mine[..., None, None], v[None], 0.0).max(2)  # [N, W, K, Mm] through agent n
    can = (mine[..., None, None] & valid[None]).any(2)  # [N, W, K, Mm]
    best_k = via.max(-1)  # [N, W, K]
    snr = np.where(sa_visible, np.clip(sa_snr_db, -SNR_SCALE_DB, SNR_SCALE_DB) / SNR_SCALE_DB, -1.0).T  # [N, K]
    leo = np.stack([snr, sa_visible.T.astype(float), np.clip(sa_elev_deg.T, -90, 90) / 90.0,
                    best_k.sum(1) / 4.0, can.any(-1).sum(1) / W], -1)
    near = user_rank < CANDIDATE_UAVS
    user_of = task_user[None, :] == np.arange(M)[:, None]  # [M, W]
    n_tasks = (user_of & task_valid[None]).sum(1) / W  # [M]
    best_user = np.where(user_of[None], best_k.max(-1)[:, None, :], 0.0).max(-1)  # [N, M]
    users = np.stack([np.where(near, np.clip(ag_snr_db, -SNR_SCALE_DB, SNR_SCALE_DB) / SNR_SCALE_DB, -1.0),
                      (user_rank == 0).astype(float), (user_rank == 1).astype(float),
                      np.broadcast_to(n_tasks, (N, M)), best_user], -1)
    bpp_n = np.where(mine[..., None, None], np.broadcast_to(bpp[None], (N, W, R, K, Mm)), -1.0).max(2).max(2)
    mode = np.stack([via.max(2), can.any(2).astype(float), bpp_n,
                     np.broadcast_to(task_valid[None, :, None], (N, W, Mm)).astype(float)], -1)
    # only choices that can matter enter the log-probability: claims of users with window tasks, modes of
    # window tasks whose user has this UAV among its candidates
    rank_of_task = user_rank[:, task_user]  # [N, W]
    return {"leo": leo.astype(np.float32), "users": users.astype(np.float32), "mode": mode.astype(np.float32),
            "mode_mask": task_valid[None, :] & (rank_of_task < CANDIDATE_UAVS),
            "users_mask": np.broadcast_to(n_tasks > 0, (N, M)).copy()}


def world_agent_rows(world, wo: WorldOptions, e: int = 0) -> dict[str, np.ndarray]:
    """agent_rows of environment e of a SaginWorld from its options (world_options)."""
    from sagin_hil.controllers.rl.features import FEATURES

    w = world
    W, K, Mm = w.W, w.K, len(w.modes)
    R = wo.uav.shape[-1] // (K * Mm)
    f = wo.feats[e, :, :-1]
    shape = (W, R, K, Mm)
    scc = f[..., FEATURES.index("pred_scc")].reshape(shape)
    bpp = f[..., FEATURES.index("log_bpp")].reshape(shape)
    valid = wo.valid[e, :, :-1].reshape(shape)
    task_uav = wo.uav[e].reshape(shape)[:, :, 0, 0]
    d = np.linalg.norm(w.uav_m[e][:, None, :] - w.tables.user_m[None], axis=-1)  # [N, M]
    rank = np.argsort(np.argsort(d, axis=0, kind="stable"), axis=0, kind="stable")
    return agent_rows(scc, valid, bpp, task_uav, wo.user[e], wo.valid[e, :, -1], w.sa_snr_db[e], w.sa_visible[e],
                      w.sa_elev_deg[e], w.ag_snr_db[e], rank)
