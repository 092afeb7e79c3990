"""MAPPO, [P000]'s baseline: one actor per UAV with shared parameters and a centralised critic, trained by PPO
on the PettingZoo form of the environment (SaginParallelEnv's agents, actions and rules) with many
environments rolled out in parallel: `joint_action_vec` applies SaginParallelEnv.joint_action to E
environments of one SaginWorld at once (tested equal to stepping E SaginParallelEnv).

Each agent's PettingZoo action is four heads over rows of features (controllers/rl/mappo_features.py): a
categorical over LEOs ("leo"), a Bernoulli per user ("users"), a categorical over modes per window task
("mode") and a Gaussian move ("waypoint"); its log-probability is their sum. The critic sees the global
state (Eq. 16, SaginParallelEnv.state()). Settings from the public MAPPO benchmark (lr 7e-4, clip 0.2, GAE
0.95, 10 epochs), fewer epochs where the CPU budget needs it (docs/rl.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sagin_hil.controllers.env import SaginParallelEnv
from sagin_hil.controllers.rl.decide import world_uav_features
from sagin_hil.controllers.rl.features import N_UAV_FEATURES, world_options
from sagin_hil.controllers.rl.mappo_features import N_LEO_F, N_MODE_F, N_USER_F, world_agent_rows
from sagin_hil.controllers.rl.nets import mlp, save_weights

__all__ = ["MAPPOConfig", "train_mappo", "MappoNets", "joint_from_heads"]


@dataclass
class MAPPOConfig:
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 2e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 10
    minibatches: int = 8
    entropy_coef: float = 0.001
    value_coef: float = 0.5
    max_grad_norm: float = 0.5

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


class MappoNets(torch.nn.Module):
    """Shared actor heads (leo, users, mode, waypoint) and the centralised critic."""

    def __init__(self, state_dim: int, cfg: MAPPOConfig):
        super().__init__()
        h = cfg.hidden
        self.leo, self.users, self.mode = mlp(N_LEO_F, 1, h), mlp(N_USER_F, 1, h), mlp(N_MODE_F, 1, h)
        self.waypoint = mlp(N_UAV_FEATURES, 3, h)
        self.log_std = torch.nn.Parameter(torch.full((3,), -1.0))
        self.critic = mlp(state_dim, 1, h)
        with torch.no_grad():  # start by claiming no user: unclaimed users go to their nearest UAV
            self.users[-1].bias.fill_(-3.0)

    def dists(self, b: dict[str, torch.Tensor]):
        leo = torch.distributions.Categorical(logits=self.leo(b["leo"])[..., 0])
        users = torch.distributions.Bernoulli(logits=self.users(b["users"])[..., 0])
        mode = torch.distributions.Categorical(logits=self.mode(b["mode"])[..., 0])
        wp = torch.distributions.Normal(self.waypoint(b["uav"]), self.log_std.clamp(-3.0, 0.0).exp())
        return leo, users, mode, wp

    def log_prob_entropy(self, b, a):
        leo, users, mode, wp = self.dists(b)
        mm = b["mode_mask"].float()
        um = b["users_mask"].float()
        lp = (leo.log_prob(a["leo"]) + (users.log_prob(a["users"]) * um).sum(-1) + (mode.log_prob(a["mode"]) * mm).sum(-1)
              + wp.log_prob(a["waypoint"]).sum(-1))
        ent = leo.entropy() + (users.entropy() * um).sum(-1) + (mode.entropy() * mm).sum(-1)  # not the move's: free
        return lp, ent


def joint_from_heads(agents: list[str], leo: np.ndarray, users: np.ndarray, mode: np.ndarray,
                     waypoint: np.ndarray) -> dict[str, dict]:
    """SaginParallelEnv actions from per-agent head outputs ([N] / [N, M] / [N, W] / [N, 3])."""
    return {a: {"leo": int(leo[n]), "users": users[n].astype(np.int8), "mode": mode[n].astype(np.int64),
                "waypoint": np.clip(waypoint[n], -1.0, 1.0).astype(np.float32)} for n, a in enumerate(agents)}


def joint_action_vec(world, leo: np.ndarray, users: np.ndarray, mode: np.ndarray,
                     waypoint: np.ndarray) -> dict[str, np.ndarray]:
    """SaginParallelEnv.joint_action for every environment of a SaginWorld at once (tested equal to it): the
    agents' LEOs; users claimed by the lowest-numbered agent, unclaimed ones by their nearest UAV; each window
    task in the mode of its user's agent; each source's ISL to the LEO serving its earliest window task."""
    w, tb = world, world.tables
    E, e = w.E, w._e
    d = np.linalg.norm(w.uav_m[:, :, None, :] - tb.user_m[None, None], axis=-1)
    user_uav = np.argmin(d, axis=1)
    claimed = np.zeros((E, w.M), bool)
    for n in range(w.N):
        take = users[:, n].astype(bool) & ~claimed
        user_uav[take] = n
        claimed |= take
    src, usr = w._take(w.source), w._take(w.user)
    serving = user_uav[e[:, None], usr]
    m = mode[e[:, None], serving, np.arange(w.W)[None]]
    isl = np.broadcast_to(np.arange(w.K), (E, w.K)).copy()
    for j in range(w.W - 1, -1, -1):
        v = w.win_valid[:, j]
        isl[e[v], src[v, j]] = leo[e[v], serving[v, j]]
    return {"uav_leo": leo.astype(np.int64), "user_uav": user_uav.astype(np.int64), "isl": isl.astype(np.int64),
            "mode": m.astype(np.int64), "waypoint": np.asarray(waypoint, float)}


def observe_world(world) -> dict[str, np.ndarray]:
    """Every agent's rows in every environment of a SaginWorld ([E, N, ...])."""
    wo = world_options(world)
    rows = [world_agent_rows(world, wo, e) for e in range(world.E)]
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    out["uav"] = world_uav_features(world)
    return out


def train_mappo(out: str | Path, minutes: float = 6.0, seed: int = 0, n_envs: int = 16,
                cfg: MAPPOConfig | None = None, checkpoint: str | Path | None = None, device: str | None = None,
                world_kwargs: dict[str, Any] | None = None, max_env_steps: int | None = None,
                progress: Callable[[float, float, float], None] | None = None, horizon_s: float = 50.0,
                snr_shaping_per_db: float = 0.0) -> dict[str, Any]:
    """Train MAPPO on n_envs SaginParallelEnv rolled out in parallel (one PPO iteration = one episode of each)
    for `minutes` of wall time; write the actor to `out` (safetensors). `checkpoint` (.pt) is saved after
    every iteration and resumed from when it exists. progress(fraction, running_scc_per_task, env_steps).
    snr_shaping_per_db: the shared reward gains every UAV's potential-based shaping (train_dsac.snr_shaping)."""
    from sagin_hil.controllers.rl.train_dsac import TRAIN_SEED_BASE, pick_device, snr_shaping

    cfg = cfg or MAPPOConfig()
    dev = pick_device(device)
    torch.manual_seed(seed)
    wk = dict(world_kwargs or {})
    wk.setdefault("horizon_s", horizon_s)
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.env import _observe as global_state

    world = SaginWorld(n_envs=n_envs, **wk)  # n_envs PettingZoo environments, stepped together
    probe = SaginParallelEnv(**wk)
    state_dim = probe.state_space.shape[0]
    nets = MappoNets(state_dim, cfg).to(dev)
    opt = torch.optim.Adam(nets.parameters(), lr=cfg.lr, eps=1e-5)
    st = {"env_steps": 0, "iterations": 0, "curve": [], "wall_s": 0.0, "ret_mean": 0.0, "ret_var": 1.0}
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location=dev, weights_only=False)
        nets.load_state_dict(saved["nets"])
        opt.load_state_dict(saved["opt"])
        st.update(saved["state"])
    rng = np.random.default_rng([seed, st["iterations"]])
    budget_s = minutes * 60.0
    t_start = time.perf_counter() - st["wall_s"]
    running = st["curve"][-1]["scc_per_task"] if st["curve"] else float("nan")
    keys = ("leo", "users", "mode", "mode_mask", "users_mask", "uav")
    while True:
        elapsed = time.perf_counter() - t_start
        if elapsed >= budget_s or (max_env_steps is not None and st["env_steps"] >= max_env_steps):
            break
        base = TRAIN_SEED_BASE + 50_000 + seed * 100_000 + st["iterations"] * n_envs
        world.reset([base + i for i in range(n_envs)])
        n_tasks = np.isfinite(world.arrival_s).sum(1)
        buf: dict[str, list] = {k: [] for k in (*keys, "a_leo", "a_users", "a_mode", "a_wp", "logp", "state",
                                                "reward")}
        ep_ret = np.zeros(n_envs)
        steps = world.n_steps
        for t in range(steps):
            obs = observe_world(world)
            b = {k: torch.as_tensor(obs[k], device=dev) for k in keys}  # [P, N, ...]
            with torch.no_grad():
                leo, users, mode, wp = nets.dists(b)
                a = {"leo": leo.sample(), "users": users.sample(), "mode": mode.sample(), "waypoint": wp.sample()}
                lp, _ = nets.log_prob_entropy(b, a)
            an = {k: v.cpu().numpy() for k, v in a.items()}
            for k in keys:
                buf[k].append(obs[k])
            buf["a_leo"].append(an["leo"]), buf["a_users"].append(an["users"]), buf["a_mode"].append(an["mode"])
            buf["a_wp"].append(an["waypoint"]), buf["logp"].append(lp.cpu().numpy())
            buf["state"].append(global_state(world))
            joint = joint_action_vec(world, an["leo"], an["users"], an["mode"], np.tanh(an["waypoint"]))
            r = world.step(joint["uav_leo"], joint["user_uav"], joint["isl"], joint["mode"], joint["waypoint"]).reward
            ep_ret += r
            if snr_shaping_per_db:
                end = np.full(n_envs, t == steps - 1)
                r = r + snr_shaping(obs["uav"], world_uav_features(world), end, cfg.gamma, snr_shaping_per_db).sum(-1)
            buf["reward"].append(r)
            st["env_steps"] += n_envs
            if progress is not None:
                progress(min(elapsed / budget_s, 1.0), running, st["env_steps"])
        # GAE on the shared reward, the critic on the global state (value normalised by running return stats)
        T = steps
        S = torch.as_tensor(np.stack(buf["state"]), device=dev)  # [T, P, D]
        with torch.no_grad():
            v = nets.critic(S)[..., 0].cpu().numpy() * math.sqrt(st["ret_var"]) + st["ret_mean"]
        rew = np.stack(buf["reward"])
        adv = np.zeros_like(rew)
        last = np.zeros(n_envs)
        for t in range(T - 1, -1, -1):
            nv = v[t + 1] if t + 1 < T else 0.0
            delta = rew[t] + cfg.gamma * nv - v[t]
            last = delta + cfg.gamma * cfg.gae_lambda * last
            adv[t] = last
        ret = adv + v
        st["ret_mean"] = 0.9 * st["ret_mean"] + 0.1 * float(ret.mean()) if st["iterations"] else float(ret.mean())
        st["ret_var"] = max(0.9 * st["ret_var"] + 0.1 * float(ret.var()) if st["iterations"] else float(ret.var()), 1e-4)
        flat = lambda x: torch.as_tensor(np.stack(x), device=dev).reshape(T * n_envs, *np.stack(x).shape[2:])  # noqa: E731
        data = {k: flat(buf[k]) for k in keys}
        act = {"leo": flat(buf["a_leo"]), "users": flat(buf["a_users"]), "mode": flat(buf["a_mode"]),
               "waypoint": flat(buf["a_wp"])}
        old_lp = flat(buf["logp"])  # [B, N]
        adv_t = torch.as_tensor(adv.reshape(-1), device=dev, dtype=torch.float32)
        adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)
        ret_t = torch.as_tensor(((ret - st["ret_mean"]) / math.sqrt(st["ret_var"])).reshape(-1), device=dev,
                                dtype=torch.float32)
        S_flat = S.reshape(T * n_envs, -1)
        B = T * n_envs
        for _ in range(cfg.epochs):
            perm = torch.as_tensor(rng.permutation(B), device=dev)
            for mb in perm.chunk(cfg.minibatches):
                bb = {k: v_[mb] for k, v_ in data.items()}
                aa = {k: v_[mb] for k, v_ in act.items()}
                lp, ent = nets.log_prob_entropy(bb, aa)  # [b, N]
                ratio = (lp - old_lp[mb]).exp()
                A = adv_t[mb][:, None]
                pg = -torch.min(ratio * A, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * A).mean()
                vloss = ((nets.critic(S_flat[mb])[..., 0] - ret_t[mb]) ** 2).mean()
                loss = pg + cfg.value_coef * vloss - cfg.entropy_coef * ent.mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(nets.parameters(), cfg.max_grad_norm)
                opt.step()
        st["iterations"] += 1
        running = float(np.mean(ep_ret / np.maximum(n_tasks, 1)))
        elapsed = time.perf_counter() - t_start
        st["curve"].append({"env_steps": st["env_steps"], "wall_s": round(elapsed, 1), "scc_per_task": running,
                            "return": float(ep_ret.mean()), "policy_loss": round(float(pg.detach()), 5),
                            "value_loss": round(float(vloss.detach()), 5)})
        st["wall_s"] = elapsed
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"nets": nets.state_dict(), "opt": opt.state_dict(), "state": st, "config": cfg.to_dict()}, ckpt)
    st["wall_s"] = time.perf_counter() - t_start
    meta = {"algo": "mappo", "config": cfg.to_dict(), "seed": seed, "n_envs": n_envs, "env_steps": st["env_steps"],
            "iterations": st["iterations"], "wall_s": round(st["wall_s"], 1), "snr_shaping_per_db": snr_shaping_per_db,
            "log_std": nets.log_std.detach().cpu().tolist()}
    path = save_weights(out, {"leo": nets.leo, "users": nets.users, "mode": nets.mode, "waypoint": nets.waypoint}, meta)
    return {"path": str(path), "curve": st["curve"], "env_steps": st["env_steps"], "iterations": st["iterations"],
            "wall_s": st["wall_s"], "device": dev}
