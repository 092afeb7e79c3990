"""Training DSAC on the vectorised SAGIN environment (SaginVecEnv), resumable, for a wall-time budget.

Credit per task (docs/rl.md): each window task's decision is a transition of its own. Dispatching ends the
task's episode with the SCC Eq. 18 pays for it when it finishes (known at dispatch in the abstraction, so
credited at once; an episode's return is unchanged); waiting leads to the same task's options one slot later
(reward 0); a task that expires or is still queued at the horizon ends with 0. The waypoint head's transition
is per UAV and slot, rewarded with the SCC of the tasks dispatched through that UAV less the move's cost
(MOVE_COST).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sagin_hil.controllers.env import SaginVecEnv
from sagin_hil.controllers.rl.decide import decide_world, world_uav_features
from sagin_hil.controllers.rl.dsac import DSACConfig, OptionHead, WaypointHead, choose
from sagin_hil.controllers.rl.features import FEATURES, N_FEATURES, N_UAV_FEATURES, uav_snr_db, world_options
from sagin_hil.controllers.rl.nets import save_weights

__all__ = ["train_dsac", "TRAIN_SEED_BASE", "pick_device", "snr_shaping", "MOVE_COST"]

TRAIN_SEED_BASE = 1_000_000  # training episodes use seeds from here on; evaluation's held-out seeds are below
# A move's flight time: at sample level a frame's tasks wait for its UAVs to arrive, in the environment a move
# is free. The waypoint head pays what a task loses by waiting that long, xi_d x flight time / mean D_max
# (0.5 x 1 s / 6.5 s per v_max x slot of move), so it flies only where the move gains more.
MOVE_COST = 0.5 / 6.5


def snr_shaping(uav_feats: np.ndarray, next_uav_feats: np.ndarray, end: np.ndarray, gamma: float,
                per_db: float) -> np.ndarray:
    """Potential-based shaping of the waypoint reward, per UAV [..., N]: gamma Phi(s') - Phi(s) with Phi =
    per_db x the mean SNR (dB) to the users the UAV serves and Phi = 0 after the episode's end (`end` [...]).
    It changes no optimal policy (the shaped return differs by -Phi(s0)); it tells the head at once what a
    move did to its links, which the SCC of the few tasks it carries says only through their noise."""
    phi = per_db * uav_snr_db(uav_feats)
    phi_next = np.where(np.asarray(end, bool)[..., None], 0.0, per_db * uav_snr_db(next_uav_feats))
    return gamma * phi_next - phi


def pick_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device = 'cuda' but torch sees no CUDA device; use device = 'cpu' or 'auto'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device = {device!r}; use 'cpu', 'cuda' or 'auto'")
    return device


class _Replay:
    """Uniform replay of fixed-shape numpy transitions."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[tuple[int, ...], Any]]):
        self.cap, self.n, self.i = int(capacity), 0, 0
        self.data = {k: np.zeros((self.cap, *s), dt) for k, (s, dt) in shapes.items()}

    def add(self, **rows: np.ndarray) -> None:
        k = len(next(iter(rows.values())))
        idx = (self.i + np.arange(k)) % self.cap
        for name, v in rows.items():
            self.data[name][idx] = v
        self.i = (self.i + k) % self.cap
        self.n = min(self.n + k, self.cap)

    def sample(self, batch: int, rng: np.random.Generator, device: str) -> dict[str, torch.Tensor]:
        idx = rng.integers(self.n, size=batch)
        return {k: torch.as_tensor(v[idx], device=device) for k, v in self.data.items()}


def _bool(x):
    return np.asarray(x, bool)


def train_dsac(out: str | Path, minutes: float = 6.0, seed: int = 0, n_envs: int = 16,
               cfg: DSACConfig | None = None, checkpoint: str | Path | None = None, device: str | None = None,
               world_kwargs: dict[str, Any] | None = None, buffer: int = 40_000, warmup: int = 2_000,
               updates_per_step: int = 2, max_env_steps: int | None = None,
               progress: Callable[[float, float, float], None] | None = None,
               checkpoint_every_s: float = 120.0, move_cost: float = MOVE_COST,
               snr_shaping_per_db: float = 0.0) -> dict[str, Any]:
    """Train for `minutes` of wall time (or `max_env_steps` environment steps) and write the policy to `out`
    (safetensors). `checkpoint`: a .pt file saved every `checkpoint_every_s` and at the end; when it exists
    training resumes from it (networks, optimisers, alpha, counters, curve; the replay buffer is refilled).
    progress(fraction_done, running_scc_per_task, env_steps) is called every step. move_cost: the waypoint
    head's price per v_max x slot of move; snr_shaping_per_db: its shaping's potential per dB (snr_shaping;
    0: none). Returns the curve and counts."""
    cfg = cfg or DSACConfig()
    dev = pick_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    wk = dict(world_kwargs or {})
    vec = SaginVecEnv(n_envs, **wk)
    w = vec.world
    E = vec.num_envs
    opt_head = OptionHead(N_FEATURES, cfg, dev)
    wp_head = WaypointHead(N_UAV_FEATURES, cfg, dev)
    state = {"env_steps": 0, "episodes": 0, "curve": [], "wall_s": 0.0, "seed": seed}
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location=dev, weights_only=False)
        opt_head.load_state_dict(saved["option"])
        wp_head.load_state_dict(saved["waypoint"])
        state.update(saved["state"])
        rng = np.random.default_rng([seed, state["env_steps"]])

    def save_ckpt() -> None:
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"option": opt_head.state_dict(), "waypoint": wp_head.state_dict(), "state": state,
                        "config": cfg.to_dict()}, ckpt)

    A = 2 * w.K * len(w.modes) + 1  # CANDIDATE_UAVS x K x modes, then wait
    rb = _Replay(buffer, {"feats": ((A, N_FEATURES), np.float32), "mask": ((A,), bool), "action": ((), np.int64),
                          "reward": ((), np.float32), "done": ((), np.float32),
                          "next_feats": ((A, N_FEATURES), np.float32), "next_mask": ((A,), bool)})
    rb_wp = _Replay(buffer, {"obs": ((N_UAV_FEATURES,), np.float32), "action": ((3,), np.float32),
                             "reward": ((), np.float32), "done": ((), np.float32),
                             "next_obs": ((N_UAV_FEATURES,), np.float32)})

    def episode_seeds() -> list[int]:
        base = TRAIN_SEED_BASE + seed * 100_000 + state["episodes"] * E
        return list(range(base, base + E))

    vec.reset(seed=episode_seeds())
    n_tasks = np.isfinite(w.arrival_s).sum(1)
    ep_ret = np.zeros(E)
    pending: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int]] = {}
    actor = opt_head.actor
    explore_pick = lambda logits, m: choose(logits, m, rng)  # noqa: E731

    def score(f: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(f, device=dev))[..., 0].cpu().numpy()

    budget_s = minutes * 60.0
    t_start = time.perf_counter() - state["wall_s"]
    last_ckpt = time.perf_counter()
    running = state["curve"][-1]["scc_per_task"] if state["curve"] else float("nan")
    info: dict[str, float] = {}
    while True:
        elapsed = time.perf_counter() - t_start
        if elapsed >= budget_s or (max_env_steps is not None and state["env_steps"] >= max_env_steps):
            break
        wo = world_options(w)
        uf = world_uav_features(w)
        wp = wp_head.act(uf.reshape(-1, N_UAV_FEATURES), explore=True).reshape(E, w.N, 3)
        dec = decide_world(w, wo, score, explore_pick, waypoint=wp)
        win = w.win.copy()
        # complete the transitions of tasks that waited last slot
        rows = []
        for e, j in zip(*np.nonzero(w.win_valid)):
            key = (int(e), int(win[e, j]))
            if key in pending:
                f0, m0, a0 = pending.pop(key)
                nm = dec.mask[e, j]
                rows.append((f0, m0, a0, 0.0, float(not nm.any()), wo.feats[e, j], nm))
        for (e, g), (f0, m0, a0) in list(pending.items()):
            if w.done[e, g]:  # expired while waiting
                rows.append((f0, m0, a0, 0.0, 1.0, f0, m0))
                del pending[(e, g)]
        _, reward, _, trunc, _ = vec.step(dec.action)
        ok, scc = w.last["ok"], w.last["scc"]
        ep_ret += reward
        state["env_steps"] += E
        wp_reward = np.zeros((E, w.N))
        O = A - 1
        for e, j in zip(*np.nonzero(dec.choice >= 0)):
            c = int(dec.choice[e, j])
            if ok[e, j]:
                rows.append((wo.feats[e, j], dec.mask[e, j], c, float(scc[e, j]), 1.0, wo.feats[e, j], dec.mask[e, j]))
                if c < O:
                    wp_reward[e, wo.uav[e, j, c]] += scc[e, j]
            else:
                pending[(int(e), int(win[e, j]))] = (wo.feats[e, j], dec.mask[e, j], c)
        if trunc.any():  # the horizon: tasks still queued earn nothing
            for f0, m0, a0 in pending.values():
                rows.append((f0, m0, a0, 0.0, 1.0, f0, m0))
            pending.clear()
        if rows:
            f0, m0, a0, r0, d0, f1, m1 = zip(*rows)
            rb.add(feats=np.stack(f0), mask=np.stack(m0), action=np.array(a0), reward=np.array(r0, np.float32),
                   done=np.array(d0, np.float32), next_feats=np.stack(f1), next_mask=np.stack(m1))
        wp_reward -= move_cost * np.minimum(np.linalg.norm(wp, axis=-1), 1.0)
        uf2 = world_uav_features(w) if not trunc.any() else uf
        if snr_shaping_per_db:
            wp_reward += snr_shaping(uf, uf2, trunc, cfg.gamma, snr_shaping_per_db)
        rb_wp.add(obs=uf.reshape(-1, N_UAV_FEATURES), action=wp.reshape(-1, 3).astype(np.float32),
                  reward=wp_reward.reshape(-1).astype(np.float32),
                  done=np.full(E * w.N, float(trunc.any()), np.float32), next_obs=uf2.reshape(-1, N_UAV_FEATURES))
        if rb.n >= max(warmup, cfg.batch):
            for _ in range(updates_per_step):
                info = opt_head.update(rb.sample(cfg.batch, rng, dev))
            info.update(wp_head.update(rb_wp.sample(cfg.batch, rng, dev)))
        if trunc.any():
            state["episodes"] += 1
            running = float(np.mean(ep_ret / np.maximum(n_tasks, 1)))
            state["curve"].append({"env_steps": state["env_steps"], "wall_s": round(elapsed, 1),
                                   "scc_per_task": running, "return": float(ep_ret.mean()),
                                   **{k: round(v, 5) for k, v in info.items()}})
            vec.reset(seed=episode_seeds())
            n_tasks = np.isfinite(w.arrival_s).sum(1)
            ep_ret[:] = 0.0
        if progress is not None:
            frac = elapsed / budget_s if max_env_steps is None else state["env_steps"] / max_env_steps
            progress(min(frac, 1.0), running, state["env_steps"])
        if ckpt is not None and time.perf_counter() - last_ckpt >= checkpoint_every_s:
            state["wall_s"] = time.perf_counter() - t_start
            save_ckpt()
            last_ckpt = time.perf_counter()
    state["wall_s"] = time.perf_counter() - t_start
    save_ckpt()
    meta = {"algo": "dsac", "features": list(FEATURES), "config": cfg.to_dict(), "seed": seed, "n_envs": E,
            "env_steps": state["env_steps"], "episodes": state["episodes"], "wall_s": round(state["wall_s"], 1),
            "move_cost": move_cost, "snr_shaping_per_db": snr_shaping_per_db,
            "world": {k: v for k, v in wk.items() if isinstance(v, (int, float, str, list, tuple))}}
    path = save_weights(out, {f"option_{k}": m for k, m in opt_head.modules().items()}
                        | {f"waypoint_{k}": m for k, m in wp_head.modules().items() if k == "actor"}, meta)
    return {"path": str(path), "curve": state["curve"], "env_steps": state["env_steps"],
            "episodes": state["episodes"], "wall_s": state["wall_s"], "device": dev}
