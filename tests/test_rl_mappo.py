"""MAPPO ([P000]'s baseline): the vectorised rollouts follow the PettingZoo environment's rules step for step,
PPO trains and resumes, and the shipped policy beats the greedy and random floors on held-out seeds."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the machine is shared; tiny networks gain nothing from threads


def test_vectorised_rollouts_equal_stepping_the_pettingzoo_environments():
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.env import SaginParallelEnv
    from sagin_hil.controllers.rl.mappo import joint_action_vec, joint_from_heads

    seeds = [4, 5, 6]
    world = SaginWorld(3, horizon_s=30.0)
    world.reset(seeds)
    envs = [SaginParallelEnv(horizon_s=30.0) for _ in seeds]
    for env, s in zip(envs, seeds):
        env.reset(seed=s)
    rng = np.random.default_rng(0)
    N, M, W, K = world.N, world.M, world.W, world.K
    total = np.zeros(3)
    for _ in range(30):
        leo, users = rng.integers(K, size=(3, N)), rng.random((3, N, M)) < 0.3
        mode, move = rng.integers(len(world.modes), size=(3, N, W)), rng.uniform(-1, 1, (3, N, 3))
        joint = joint_action_vec(world, leo, users, mode, move)
        r = world.step(joint["uav_leo"], joint["user_uav"], joint["isl"], joint["mode"], joint["waypoint"]).reward
        for i, env in enumerate(envs):
            acts = joint_from_heads(env.possible_agents, leo[i], users[i], mode[i], move[i])
            _, rew, _, _, _ = env.step(acts)
            assert rew["uav0"] == pytest.approx(r[i], abs=1e-9)
        total += r
    assert total.sum() > 0


def test_mappo_trains_and_resumes(tmp_path):
    from sagin_hil.controllers.rl.mappo import train_mappo
    from sagin_hil.controllers.rl.nets import load_weights

    kw = dict(n_envs=2, horizon_s=10.0, minutes=5.0, checkpoint=tmp_path / "c.pt")
    first = train_mappo(tmp_path / "p.safetensors", max_env_steps=20, **kw)
    assert first["iterations"] == 1 and first["env_steps"] == 20
    second = train_mappo(tmp_path / "p.safetensors", max_env_steps=40, **kw)
    assert second["iterations"] == 2 and second["curve"][0] == first["curve"][0]
    _, meta = load_weights(tmp_path / "p.safetensors")
    assert meta["algo"] == "mappo" and meta["iterations"] == 2


def test_shipped_mappo_beats_greedy_and_random_on_held_out_seeds():
    from sagin_hil.controllers.rl.evaluate import evaluate_policy

    kw = {"horizon_s": 80.0}
    mappo = evaluate_policy("mappo", [0, 1, 2], kw)
    greedy = evaluate_policy("greedy", [0, 1, 2], kw)
    rand = evaluate_policy("random", [0, 1, 2], kw)
    assert mappo.mean() > greedy.mean() + 0.05 > rand.mean() + 0.05, (mappo, greedy, rand)
