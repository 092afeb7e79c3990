"""Reinforcement-learning forms of the SAGIN link abstraction (docs/environment.md).

- `SaginEnv`: a Gymnasium environment (registered as "SaginEnv-v0" when this module is imported):
  observation = Eq. 16 of [P000], action = Eq. 17 as a Dict of MultiDiscrete pairings/modes and a Box of
  UAV moves, reward = Eq. 18 (the SCC of the tasks decided in the slot);
- `SaginVecEnv`: E environments stepped at once in numpy (gymnasium.vector.VectorEnv API, same-step reset);
- `SaginParallelEnv`: a PettingZoo ParallelEnv with one agent per UAV (MAPPO-style shared reward);
- `measure_env_throughput`: environment steps per second of a SaginVecEnv on this core.

Everything heavy is imported here, not at `import sagin_hil.controllers`.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sagin_hil.controllers.abstraction import SNR_FLOOR_DB, SaginWorld

__all__ = ["SaginEnv", "SaginVecEnv", "SaginParallelEnv", "measure_env_throughput", "ENV_ID", "plan_to_action"]

ENV_ID = "SaginEnv-v0"
SNR_SCALE_DB = 50.0  # SNRs are shown as dB / 50, clipped to [-1, 1]
DELAY_SCALE_S = 11.0  # deadlines and waiting times are shown in units of the largest D_max of [P000] Sec. V


def _obs_layout(world: SaginWorld) -> dict[str, tuple[int, ...]]:
    K, N, M, W = world.K, world.N, world.M, world.W
    return {"time": (1,), "uav_position": (N, 3), "leo_uav_snr": (K, N), "leo_uav_visible": (K, N),
            "isl_snr": (K, K), "uav_user_snr": (N, M), "task_valid": (W,), "task_source": (W, K),
            "task_user": (W, M), "task_q_min": (W,), "task_image_psnr": (W,), "task_deadline": (W,), "task_waited": (W,),
            "backlog": (K + N,), "queue": (1,)} | ({"uav_user_los": (N, M)} if world.tables.buildings is not None else {})


def _observe(world: SaginWorld) -> np.ndarray:
    """Eq. 16 for every environment, [E, D] float32 in [-1, 1] (layout: docs/environment.md)."""
    tb, E, i = world.tables, world.E, world.i_t
    t = np.full((E, 1), world.t_s / world.horizon_s)
    span = (tb.area_hi_m - tb.area_lo_m) / 2
    mid = (tb.area_hi_m + tb.area_lo_m) / 2
    xy = (world.uav_m[..., :2] - mid) / span
    z = (world.uav_m[..., 2:] - tb.alt_min_m[:, None]) / np.maximum(tb.alt_max_m - tb.alt_min_m, 1e-9)[:, None]
    pos = np.concatenate([xy, z], -1).reshape(E, -1)
    sa = np.maximum(world.sa_snr_db, SNR_FLOOR_DB).reshape(E, -1) / SNR_SCALE_DB
    vis = world.sa_visible.reshape(E, -1).astype(float)
    isl = np.where(tb.isl_visible[i], tb.isl_snr_db[i], SNR_FLOOR_DB).ravel() / SNR_SCALE_DB
    isl = np.broadcast_to(isl, (E, isl.size))
    ag = world.ag_snr_db.reshape(E, -1) / SNR_SCALE_DB
    valid = world.win_valid
    src = np.where(valid[..., None], np.eye(world.K)[world._take(world.source)], 0.0).reshape(E, -1)
    usr = np.where(valid[..., None], np.eye(world.M)[world._take(world.user)], 0.0).reshape(E, -1)
    qm = np.where(valid, world._take(world.q_min_db) / SNR_SCALE_DB, 0.0)
    img = np.where(valid, world.pool_psnr_1bpp_db[world._take(world.image)] / SNR_SCALE_DB, 0.0)
    dl = np.where(valid, world._take(world.deadline_s) / DELAY_SCALE_S, 0.0)
    waited = np.where(valid, (world.t_s - world._take(world.arrival_s)) / DELAY_SCALE_S, 0.0)
    backlog = np.maximum(world.busy_until_s - world.t_s, 0.0) / DELAY_SCALE_S
    queue = (world.n_pending / (4.0 * world.W))[:, None]
    parts = [t, pos, sa, vis, isl, ag, valid.astype(float), src, usr, qm, img, dl, waited, backlog, queue]
    if world.tables.buildings is not None:  # the channel map: 1 = LoS, 0 = a building blocks the link
        parts.append(world.ag_los.reshape(E, -1).astype(float))
    out = np.concatenate(parts, axis=1)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _spaces(world: SaginWorld) -> tuple[spaces.Box, spaces.Dict]:
    dim = sum(int(np.prod(s)) for s in _obs_layout(world).values())
    obs = spaces.Box(-1.0, 1.0, (dim,), np.float32)
    act = spaces.Dict({
        "uav_leo": spaces.MultiDiscrete([world.K] * world.N),
        "user_uav": spaces.MultiDiscrete([world.N] * world.M),
        "isl": spaces.MultiDiscrete([world.K] * world.K),
        "mode": spaces.MultiDiscrete([len(world.modes)] * world.W),
        "waypoint": spaces.Box(-1.0, 1.0, (world.N, 3), np.float32),
    })
    return obs, act


def _info(world: SaginWorld, r=None, e: int | None = None) -> dict[str, Any]:
    pick = (lambda a: a) if e is None else (lambda a: a[e].item())
    out = {"time_s": world.t_s, "pending": pick(world.n_pending)}
    if r is not None:
        out.update(dispatched=pick(r.dispatched), rejected=pick(r.rejected), undelivered=pick(r.undelivered),
                   expired=pick(r.expired))
    return out


def plan_to_action(world: SaginWorld, routes, modes: dict[int, str] | None = None,
                   e: int = 0) -> dict[str, np.ndarray]:
    """The Dict action of environment `e` that carries window tasks along `routes` (window slot -> node names,
    LEO [-> LEO] -> UAV -> user) in `modes` (window slot -> mode name); other entries keep defaults (each UAV's
    highest LEO, each user's nearest UAV, no ISL, the first mode, hover). `routes` may instead be a Plan made
    on `world.controller_state(e)` (task ids = window slots; its waypoints become moves toward them). A plan
    breaking (15a)-(15c) raises ValueError naming the constraint: the action encoding cannot express it."""
    waypoints = {}
    if hasattr(routes, "allocations"):  # a datatypes.Plan
        plan = routes
        routes = {j: a.route.nodes for j, a in plan.allocations.items()}
        modes = {j: a.mode for j, a in plan.allocations.items()}
        waypoints = plan.waypoints_m
    modes = modes or {}
    tb = world.tables
    idx = {n: i for i, n in enumerate(tb.sats + tb.uavs + tb.users)}
    uav_leo = np.argmax(world.sa_elev_deg[e], axis=0)
    d = np.linalg.norm(world.uav_m[e][:, None, :] - tb.user_m[None], axis=-1)
    user_uav = np.argmin(d, axis=0)
    isl = np.arange(world.K)
    mode = np.zeros(world.W, np.intp)
    leo_of: dict[str, str] = {}
    uav_of: dict[str, str] = {}
    isl_of: dict[str, str] = {}
    for j, nodes in sorted(routes.items()):
        nodes = tuple(nodes)
        src, leo, uav, user = nodes[0], nodes[-3], nodes[-2], nodes[-1]
        if leo_of.setdefault(uav, leo) != leo:
            raise ValueError(f"(15a) {uav} is paired with {leo_of[uav]} and {leo} in one slot; a UAV takes one LEO")
        if uav_of.setdefault(user, uav) != uav:
            raise ValueError(f"(15b) {user} is served by {uav_of[user]} and {uav} in one slot; a user takes one UAV")
        if len(nodes) == 4 and isl_of.setdefault(src, leo) != leo:
            raise ValueError(f"(15c) {src} uses ISLs to {isl_of[src]} and {leo} in one slot; one ISL per LEO")
        uav_leo[idx[uav] - world.K] = idx[leo]
        user_uav[idx[user] - world.K - world.N] = idx[uav] - world.K
        if len(nodes) == 4:
            isl[idx[src]] = idx[leo]
    for j, m in modes.items():
        if m not in world.modes:
            raise ValueError(f"mode {m!r} of window task {j} is not offered; the environment's modes: {world.modes}")
        mode[j] = world.modes.index(m)
    move = np.zeros((world.N, 3), np.float32)
    for u, target in waypoints.items():
        n = idx[u] - world.K
        step_m = world.tables.v_max_mps[n] * world.slot_s
        move[n] = np.clip((np.asarray(target, float) - world.uav_m[e, n]) / step_m, -1.0, 1.0)
    return {"uav_leo": uav_leo.astype(np.int64), "user_uav": user_uav.astype(np.int64),
            "isl": isl.astype(np.int64), "mode": mode.astype(np.int64), "waypoint": move}


class SaginEnv(gym.Env):
    """One SAGIN environment (docs/environment.md). Keyword arguments go to SaginWorld (scenario, horizon_s,
    slot_s, arrival_rate_hz, window, modes, target_bler, ...)."""

    metadata = {"render_modes": []}

    def __init__(self, **world_kwargs: Any):
        self.world = SaginWorld(n_envs=1, **world_kwargs)
        self.observation_space, self.action_space = _spaces(self.world)
        self.obs_layout = _obs_layout(self.world)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        s = seed if seed is not None else int(self.np_random.integers(2**31))
        self.world.reset([s])
        return _observe(self.world)[0], _info(self.world, e=0)

    def step(self, action):
        w = self.world
        r = w.step(np.asarray(action["uav_leo"])[None], np.asarray(action["user_uav"])[None],
                   np.asarray(action["isl"])[None], np.asarray(action["mode"])[None],
                   np.asarray(action["waypoint"], float)[None])
        return _observe(w)[0], float(r.reward[0]), False, bool(w.truncated), _info(w, r, e=0)


class SaginVecEnv(gym.vector.VectorEnv):
    """`num_envs` SAGIN environments stepped together in numpy. Actions: the Dict of SaginEnv with a leading
    [E] axis on every entry. All environments share the horizon, so they end (truncated) in the same step and
    are reset in it (same-step autoreset): that step returns the new episodes' first observations and the
    last ones in info["final_obs"]. reset(seed=s) seeds environment i with s + i, like SaginEnv(seed=s + i)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 64, **world_kwargs: Any):
        self.world = SaginWorld(n_envs=num_envs, **world_kwargs)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = _spaces(self.world)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.obs_layout = _obs_layout(self.world)
        self._seed_rng = np.random.default_rng()

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is None:
            seeds = [int(s) for s in self._seed_rng.integers(2**31, size=self.num_envs)]
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
            self._seed_rng = np.random.default_rng(int(seed))
        else:
            seeds = list(seed)
        self.world.reset(seeds)
        return _observe(self.world), _info(self.world)

    def step(self, actions):
        w = self.world
        r = w.step(actions["uav_leo"], actions["user_uav"], actions["isl"], actions["mode"], actions["waypoint"])
        obs, info = _observe(w), _info(w, r)
        trunc = np.full(self.num_envs, w.truncated)
        if w.truncated:
            info["final_obs"] = obs
            obs, _ = self.reset(seed=[int(s) for s in self._seed_rng.integers(2**31, size=self.num_envs)])
        return obs, r.reward, np.zeros(self.num_envs, bool), trunc, info


try:  # a real pettingzoo.ParallelEnv when PettingZoo is installed (pyproject.toml lists it); same API without
    from pettingzoo import ParallelEnv as _ParallelBase
except ImportError:  # pragma: no cover
    _ParallelBase = object


class SaginParallelEnv(_ParallelBase):
    """PettingZoo ParallelEnv: one agent per UAV, all sharing the reward of Eq. 18 (MAPPO's setting).

    Agent n's action (Dict): "leo" Discrete(K), the LEO it takes (15a); "users" MultiBinary(M), the users it
    offers to serve; "mode" MultiDiscrete(modes^W), the mode for window tasks of the users it serves;
    "waypoint" Box(-1, 1, (3,)). A user claimed by several agents goes to the lowest-numbered one, an
    unclaimed user to its nearest UAV (15b); a source LEO's ISL goes to the LEO of the UAV serving its earliest
    window task (15c). Each agent observes Eq. 16 followed by a one-hot of its own index; state() is Eq. 16.
    """

    metadata = {"render_modes": [], "name": "sagin_parallel_v0", "is_parallelizable": True}

    def __init__(self, **world_kwargs: Any):
        self.world = SaginWorld(n_envs=1, **world_kwargs)
        w = self.world
        self.possible_agents = list(w.tables.uavs)
        self.agents: list[str] = []
        gobs, _ = _spaces(w)
        self.state_space = gobs
        self._obs_space = spaces.Box(-1.0, 1.0, (gobs.shape[0] + w.N,), np.float32)
        self._act_space = spaces.Dict({"leo": spaces.Discrete(w.K), "users": spaces.MultiBinary(w.M),
                                       "mode": spaces.MultiDiscrete([len(w.modes)] * w.W),
                                       "waypoint": spaces.Box(-1.0, 1.0, (3,), np.float32)})

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Dict:
        return self._act_space

    def state(self) -> np.ndarray:
        return _observe(self.world)[0]

    def _obs(self) -> dict[str, np.ndarray]:
        g = _observe(self.world)[0]
        eye = np.eye(self.world.N, dtype=np.float32)
        return {a: np.concatenate([g, eye[n]]) for n, a in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        self.world.reset([seed])
        self.agents = list(self.possible_agents)
        return self._obs(), {a: {} for a in self.agents}

    def joint_action(self, actions: dict[str, dict]) -> dict[str, np.ndarray]:
        """The SaginEnv Dict action the agents' actions amount to (rules in the class docstring)."""
        w, tb = self.world, self.world.tables
        uav_leo = np.argmax(w.sa_elev_deg[0], axis=0)
        d = np.linalg.norm(w.uav_m[0][:, None, :] - tb.user_m[None], axis=-1)
        user_uav = np.argmin(d, axis=0)
        claimed = np.zeros(w.M, bool)
        waypoint = np.zeros((w.N, 3))
        modes = np.zeros((w.N, w.W), np.intp)
        for n, a in enumerate(self.possible_agents):
            act = actions.get(a)
            if act is None:
                continue
            uav_leo[n] = int(act["leo"])
            take = np.asarray(act["users"], bool) & ~claimed
            user_uav[take] = n
            claimed |= take
            modes[n] = np.asarray(act["mode"], np.intp)
            waypoint[n] = np.asarray(act["waypoint"], float)
        src, usr = w._take(w.source)[0], w._take(w.user)[0]
        serving = user_uav[usr]
        mode = modes[serving, np.arange(w.W)]
        isl = np.arange(w.K)
        for j in range(w.W - 1, -1, -1):  # reversed: the earliest window task of each source wins
            if w.win_valid[0, j]:
                isl[src[j]] = uav_leo[serving[j]]
        return {"uav_leo": uav_leo, "user_uav": user_uav, "isl": isl, "mode": mode, "waypoint": waypoint}

    def step(self, actions: dict[str, dict]):
        w = self.world
        a = self.joint_action(actions)
        r = w.step(a["uav_leo"][None], a["user_uav"][None], a["isl"][None], a["mode"][None], a["waypoint"][None])
        reward = float(r.reward[0])
        done = bool(w.truncated)
        obs = self._obs()
        agents = list(self.agents)
        info = _info(w, r, e=0)
        if done:
            self.agents = []
        return (obs, {a: reward for a in agents}, {a: False for a in agents}, {a: done for a in agents},
                {a: dict(info) for a in agents})

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None


def measure_env_throughput(n_envs: int = 64, steps: int = 400, seed: int = 0, **world_kwargs: Any) -> float:
    """Environment steps per second (n_envs x vector steps / wall time) of a SaginVecEnv stepping random
    actions on the calling thread; actions are drawn before the clock starts."""
    env = SaginVecEnv(n_envs, **world_kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(16)]
    t0 = time.perf_counter()
    for s in range(steps):
        env.step(actions[s % len(actions)])
    return n_envs * steps / (time.perf_counter() - t0)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="sagin_hil.controllers.env:SaginEnv", max_episode_steps=None)
