"""DSAC ([P000] Eq. 19-32, the DSAC-T refinements): the critic's gradients are the paper's, each refinement
switches, the option head learns, training resumes from a checkpoint, the features the controller computes
from a ControllerState are the environment's, and the shipped policy beats greedy on held-out seeds."""

import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the machine is shared; tiny networks gain nothing from threads

from sagin_hil.controllers.rl.dsac import DSACConfig, OptionHead, WaypointHead, gaussian_critic_loss


def _grads(cfg, mu0, sigma0, y_q, y_z):
    mu = torch.tensor([mu0], requires_grad=True)
    sigma = torch.tensor([sigma0], requires_grad=True)
    gaussian_critic_loss(mu, sigma, torch.tensor([y_q]), torch.tensor([y_z]), cfg, omega=1.0).backward()
    return mu.grad.item(), sigma.grad.item()


def test_critic_gradients_are_eq_26_27_with_the_td_bound_of_eq_30():
    cfg = DSACConfig(variance_scaled=False, td_bound=1.0)
    mu, s, y = 0.3, 0.5, 0.9
    g_mu, g_s = _grads(cfg, mu, s, y, y)
    assert g_mu == pytest.approx(-(y - mu) / s ** 2, rel=1e-5)  # Eq. 26 (descent direction)
    assert g_s == pytest.approx(-((y - mu) ** 2 / s ** 3 - 1 / s), rel=1e-5)  # Eq. 27
    _, g_far = _grads(cfg, mu, s, y, 5.0)  # a far sampled target is clipped to mu + bound in sigma's gradient
    assert g_far == pytest.approx(-(1.0 ** 2 / s ** 3 - 1 / s), rel=1e-5)
    # expected-value substitution: the mean follows y_q, not the sampled y_z
    g_mu_q, _ = _grads(cfg, mu, s, 0.5, 5.0)
    assert g_mu_q == pytest.approx(-(0.5 - mu) / s ** 2, rel=1e-5)


def test_sigma_is_clamped_below_as_eq_28():
    from sagin_hil.controllers.rl.dsac import _sigma

    s = _sigma(torch.tensor([-20.0, 0.0, 5.0]), std_min=0.05)
    assert s[0].item() == pytest.approx(0.05) and s[1].item() > 0.05 and s[2].item() == pytest.approx(5.0, abs=0.01)


def test_variance_scaling_makes_the_mean_gradient_scale_free():
    """With the critic loss scaled by the running mean of sigma^2, a reward 10x larger (sigma 10x larger) gives
    the mean a gradient 10x larger, not 1/10 as the unscaled Gaussian likelihood does."""
    on, off = DSACConfig(variance_scaled=True), DSACConfig(variance_scaled=False)

    def g(cfg, scale):
        mu = torch.tensor([0.0], requires_grad=True)
        sig = torch.tensor([0.5 * scale])
        omega = (0.5 * scale) ** 2
        gaussian_critic_loss(mu, sig, torch.tensor([scale]), torch.tensor([scale]), cfg, omega).backward()
        return mu.grad.item()

    assert g(on, 10.0) / g(on, 1.0) == pytest.approx(10.0, rel=1e-4)
    assert g(off, 10.0) / g(off, 1.0) == pytest.approx(0.1, rel=1e-4)


def _bandit(n, rng, A=6, F=15):
    feats = rng.normal(size=(n, A, F)).astype(np.float32)
    mask = np.ones((n, A), bool)
    mask[:, -1] = rng.random(n) < 0.5
    reward = 1 / (1 + np.exp(-3 * feats[..., 0]))  # the option's first feature says what it pays
    return feats, mask, reward


@pytest.mark.parametrize("twin, expected, scaled", [(True, True, True), (False, False, False), (True, False, True),
                                                    (False, True, False)])
def test_option_head_learns_a_contextual_bandit_with_each_switch(twin, expected, scaled):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = DSACConfig(twin=twin, expected_value=expected, variance_scaled=scaled, batch=128, lr_value=3e-3,
                     lr_policy=3e-3)
    head = OptionHead(15, cfg)
    for _ in range(250):
        f, m, r = _bandit(cfg.batch, rng)
        a = np.array([rng.choice(np.nonzero(row)[0]) for row in m])
        b = {"feats": f, "mask": m, "action": a, "reward": r[np.arange(len(a)), a].astype(np.float32),
             "done": np.ones(len(a), np.float32), "next_feats": f, "next_mask": m}
        info = head.update({k: torch.as_tensor(v) for k, v in b.items()})
    assert np.isfinite(info["critic_loss"])
    f, m, r = _bandit(400, rng)
    pick = head.act(f, m, rng, explore=False)
    best = np.where(m, r, -1).argmax(-1)
    assert np.mean(pick == best) > 0.8
    assert len(head.critics) == (2 if twin else 1)


def test_waypoint_head_moves_toward_reward():
    """The continuous head (Eq. 32's reparameterised policy) learns a one-step reward -(a - 0.5)^2."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    head = WaypointHead(8, DSACConfig(batch=128, lr_value=3e-3, lr_policy=3e-3))
    for _ in range(300):
        obs = rng.normal(size=(128, 8)).astype(np.float32)
        a = rng.uniform(-1, 1, size=(128, 3)).astype(np.float32)
        r = -((a - 0.5) ** 2).sum(-1).astype(np.float32)
        head.update({k: torch.as_tensor(v) for k, v in dict(obs=obs, action=a, reward=r, done=np.ones(128, np.float32),
                                                             next_obs=obs).items()})
    act = head.act(rng.normal(size=(64, 8)).astype(np.float32), explore=False)
    assert np.all(np.abs(act.mean(0) - 0.5) < 0.25), act.mean(0)


def test_training_resumes_from_its_checkpoint(tmp_path):
    from sagin_hil.controllers.rl.nets import load_weights
    from sagin_hil.controllers.rl.train_dsac import train_dsac

    torch.set_num_threads(1)
    kw = dict(n_envs=2, world_kwargs={"horizon_s": 10.0}, warmup=16, cfg=DSACConfig(batch=16), minutes=5.0,
              checkpoint=tmp_path / "c.pt")
    first = train_dsac(tmp_path / "p.safetensors", max_env_steps=40, **kw)
    assert first["env_steps"] == 40 and len(first["curve"]) == 2 and (tmp_path / "c.pt").is_file()
    second = train_dsac(tmp_path / "p.safetensors", max_env_steps=80, **kw)
    assert second["env_steps"] == 80 and second["curve"][:2] == first["curve"] and len(second["curve"]) == 4
    _, meta = load_weights(tmp_path / "p.safetensors")
    assert meta["algo"] == "dsac" and meta["env_steps"] == 80 and meta["config"]["twin"] is True


def test_state_features_equal_the_environments():
    """The controller's features from a ControllerState are the ones the policy was trained on."""
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.rl.decide import decide_world
    from sagin_hil.controllers.rl.dsac import choose
    from sagin_hil.controllers.rl.features import state_options, world_options

    world = SaginWorld(1)
    world.reset([3])
    checked = 0
    while checked < 4 and not world.truncated:
        if world.win_valid[0].any():
            world.busy_until_s[:] = 0.0  # no queue: the controller's own record starts empty too
            wo = world_options(world)
            state = world.controller_state(0)
            rows = state_options(state, world.predictor, {})
            tb = world.tables
            for j, (opts, feats, _) in enumerate(rows):
                for i, (route, mode) in enumerate(opts):
                    *leos, uav, user = route.nodes
                    hit = [o for o in np.nonzero(wo.valid[0, j, :-1])[0]
                           if tb.uavs[wo.uav[0, j, o]] == uav and tb.sats[wo.leo[0, j, o]] == leos[-1]
                           and world.modes[wo.mode[0, j, o]] == mode]
                    assert len(hit) == 1, (route, mode)
                    np.testing.assert_allclose(feats[i], wo.feats[0, j, hit[0]], atol=1e-5)
                np.testing.assert_allclose(feats[-1], wo.feats[0, j, -1], atol=1e-5)  # the wait row
                checked += 1
        a = decide_world(world, world_options(world), lambda f: f[..., 0], lambda z, m: choose(z, m, None)).action
        world.step(a["uav_leo"], a["user_uav"], a["isl"], a["mode"], a["waypoint"])
    assert checked >= 4


def test_shipped_dsac_beats_greedy_and_random_on_held_out_seeds():
    from sagin_hil.controllers.rl.evaluate import evaluate_policy

    kw = {"horizon_s": 80.0}
    dsac = evaluate_policy("dsac", [0, 1, 2], kw)
    greedy = evaluate_policy("greedy", [0, 1, 2], kw)
    rand = evaluate_policy("random", [0, 1, 2], kw)
    assert dsac.mean() > greedy.mean() + 0.05 > rand.mean() + 0.05, (dsac, greedy, rand)


def test_a_wrong_or_missing_weights_file_is_named(tmp_path):
    from sagin_hil.controllers.rl.policy import load_policy

    with pytest.raises(FileNotFoundError, match="sagin-hil train dsac"):
        load_policy("dsac", tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="not DSAC"):
        load_policy("dsac", _shipped("mappo"))
    with pytest.raises(ValueError, match="'dsac' and 'mappo'"):
        load_policy("ppo")


def _shipped(algo):
    from sagin_hil.controllers.rl.train import shipped_weights

    return shipped_weights(algo)


def test_training_in_another_world_records_it_and_is_never_shipped(tmp_path):
    from typer.testing import CliRunner

    from sagin_hil.cli import app
    from sagin_hil.controllers.rl.train import train_seeds

    torch.set_num_threads(1)
    world = {"horizon_s": 10.0, "modes": ("mode1-lossless", "mode3_3"), "n_pixels": 1166667}
    summary = train_seeds("dsac", tmp_path, minutes=5.0, seeds=1, n_envs=2, world_kwargs=world, warmup=16,
                          cfg=DSACConfig(batch=16), max_env_steps=16)
    assert summary["world"]["modes"] == ("mode1-lossless", "mode3_3") and summary["seeds"][0]["env_steps"] == 16
    assert json.loads((tmp_path / "dsac-summary.json").read_text())["world"]["n_pixels"] == 1166667
    res = CliRunner().invoke(app, ["train", "dsac", "--mode1", "mode1-lossless", "--ship", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "the shipped policies are the default world's" in res.output
    res = CliRunner().invoke(app, ["train", "mappo", "--mode1", "mode9", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "use one of mode1, mode1-lossless" in res.output


def test_snr_shaping_is_potential_based_and_pays_flying_toward_the_users():
    """The waypoint shaping telescopes: its discounted sum over an episode is -Phi(s0), whatever the moves, so
    it changes no optimal policy; in a world whose UAVs start 1.5 km out, flying toward their users earns it
    and flying away pays it."""
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.controllers.rl.decide import world_uav_features
    from sagin_hil.controllers.rl.features import N_UAV_FEATURES, uav_snr_db
    from sagin_hil.controllers.rl.train_dsac import snr_shaping

    rng = np.random.default_rng(0)
    T, gamma, per_db = 30, 0.99, 0.2
    feats = rng.normal(size=(T + 1, 4, 3, N_UAV_FEATURES))  # [t, env, UAV, feature]
    total = sum(gamma ** t * snr_shaping(feats[t], feats[t + 1], np.full(4, t == T - 1), gamma, per_db)
                for t in range(T))
    np.testing.assert_allclose(total, -per_db * uav_snr_db(feats[0]), rtol=1e-9, atol=1e-9)

    def shaped_after(sign):
        world = SaginWorld(1, horizon_s=40.0, uav_offset_m=1500.0)
        world.reset([5])
        uf = world_uav_features(world)
        toward = np.zeros((1, world.N, 3))
        toward[..., :2] = uf[..., 2:4] / np.linalg.norm(uf[..., 2:4], axis=-1, keepdims=True)  # to the centroid
        r = np.zeros((1, world.N))
        for _ in range(10):
            uf = world_uav_features(world)
            nearest = np.argmin(np.linalg.norm(world.uav_m[:, :, None] - world.tables.user_m[None, None], axis=-1), 1)
            world.step(np.argmax(world.sa_elev_deg, axis=1), nearest, np.arange(world.K)[None],
                       np.zeros((1, world.W), np.int64), sign * toward)
            r += snr_shaping(uf, world_uav_features(world), np.zeros(1, bool), 1.0, per_db)
        return r

    closer, away = shaped_after(+1.0), shaped_after(-1.0)
    assert np.all(closer > 0) and np.all(away < 0), (closer, away)


def test_the_reward_options_are_recorded_checked_and_never_shipped(tmp_path):
    from typer.testing import CliRunner

    from sagin_hil.cli import app
    from sagin_hil.controllers.rl.nets import load_weights
    from sagin_hil.controllers.rl.train import train_seeds

    torch.set_num_threads(1)
    summary = train_seeds("dsac", tmp_path, minutes=5.0, seeds=1, n_envs=2, world_kwargs={"horizon_s": 10.0},
                          warmup=16, cfg=DSACConfig(batch=16), max_env_steps=16, snr_shaping_per_db=0.2,
                          move_cost=0.0)
    assert summary["reward"] == {"snr_shaping_per_db": 0.2, "move_cost": 0.0}
    assert summary["seeds"][0]["final_scc_per_task"] is None  # 8 slots of a 10-slot episode: none finished
    _, meta = load_weights(tmp_path / "dsac-seed0.safetensors")
    assert meta["snr_shaping_per_db"] == 0.2 and meta["move_cost"] == 0.0
    for args, msg in ((["dsac", "--snr-shaping", "0.2", "--ship"], "trained with the default reward"),
                      (["mappo", "--move-cost", "0"], "MAPPO's moves are free"),
                      (["dsac", "--snr-shaping", "-1"], "--snr-shaping -1.0 must be >= 0")):
        res = CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path)])
        assert res.exit_code == 2 and msg in " ".join(res.output.replace("│", " ").split()), res.output
    res = CliRunner().invoke(app, ["train", "mappo", "--minutes", "0.001", "--seeds", "1", "--envs", "2",
                                   "--snr-shaping", "0.2", "--out", str(tmp_path / "said")])
    assert res.exit_code == 0 and "world: default; reward: snr_shaping_per_db = 0.2" in res.output, res.output
