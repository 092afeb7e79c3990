"""SPIFF's trained engine configuring the codec per image (controllers/spiff/policy.py): its state mapping, its
agreement with the configurations Table IV evaluated, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from sagin_hil.controllers.spiff.engine import D_MAX_S, RATE_BPS, TARGETS
from sagin_hil.controllers.spiff.policy import SpiffPolicy, engine_rate_bps, route_rate_bps


def test_route_rate_adds_the_hops_air_times():
    assert route_rate_bps([2e6, 2e6]) == pytest.approx(1e6)
    assert route_rate_bps([1e6, 3e6]) == pytest.approx(1 / (1 / 1e6 + 1 / 3e6))
    assert route_rate_bps([1e6, 0.0]) == 0.0 and route_rate_bps([]) == 0.0


def test_engine_rate_is_referred_to_d_max_and_clamped_to_the_training_range():
    assert engine_rate_bps(2e4, D_MAX_S) == pytest.approx(2e4)
    assert engine_rate_bps(2e4, D_MAX_S / 2) == pytest.approx(1e4)  # half the deadline: as a link at half the rate
    assert engine_rate_bps(1e7, 5.0) == RATE_BPS[1] and engine_rate_bps(10.0, 5.0) == RATE_BPS[0]
    assert engine_rate_bps(0.0, 5.0) == RATE_BPS[0]


def test_the_policy_picks_the_configurations_table_iv_evaluated():
    """On every held-out person image, the configuration the policy gives the codec at run time is the grid
    point whose measured outcomes the reproduction scored for the same actor, image, rate and target: the
    run-time segmentation and features equal the outcome table's, and the action is snapped the same way."""
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.generative.spiff_images import person_images
    from sagin_hil.controllers.spiff.engine import OutcomeEnv
    from sagin_hil.controllers.spiff.outcomes import image_features, load_outcomes

    table = load_outcomes()
    env = OutcomeEnv(table, "eval", seed=0)
    rows = {r["tag"]: i for i, r in enumerate(env.rows)}
    codec = get_codec("spiff")
    policies = {t: SpiffPolicy("spiff", t, seed=3) for t in TARGETS}
    checked = 0
    for tag, img in person_images("eval"):
        if tag not in rows:  # a variant whose person share the table's image set left out
            continue
        rgb, _, ranks = codec.segment(img)
        assert np.allclose(image_features(rgb, ranks), env.rows[rows[tag]]["features"], atol=1e-6), tag
        for target, policy in policies.items():
            rate = float(np.exp(np.log(RATE_BPS).mean()))
            d = policy.decide(rgb, ranks, rate, D_MAX_S, (0.25, 0.2, False))
            assert d.configuration == "engine" and d.engine_rate_bps == pytest.approx(rate)
            st = {"image": rows[tag], "target": target, "rate_bps": rate}
            a = policy.engine.act(env.image_part(st), env.target_part(st))
            assert d.beta == env.betas[np.argmin(np.abs(env.betas - a[0]))]
            assert d.keep == env.keeps[np.argmin(np.abs(env.keeps - a[1]))]
            assert d.caption == (a[2] > 0.5)
        checked += 1
    assert checked == len(env.rows)


def test_stricter_targets_get_configurations_that_keep_more():
    """The shipped engine spends bits where its target asks for fidelity: for every trained seed, the measured
    payload of its chosen configurations, averaged over the held-out images, does not shrink as the target
    tightens, and is larger under the strict target than the lenient one."""
    from sagin_hil.controllers.spiff.engine import OutcomeEnv
    from sagin_hil.controllers.spiff.outcomes import load_outcomes

    env = OutcomeEnv(load_outcomes(), "eval", seed=0)
    for seed in range(8):
        engine = SpiffPolicy("spiff", seed=seed).engine
        mean_bits = {}
        for target in ("strict", "intermediate", "lenient"):
            bits = []
            for i, row in enumerate(env.rows):
                st = {"image": i, "target": target, "rate_bps": RATE_BPS[1]}
                a = engine.act(env.image_part(st), env.target_part(st))
                cell = row["grid"][int(np.argmin(np.abs(env.betas - a[0])))][int(np.argmin(np.abs(env.keeps - a[1])))]
                bits.append(np.mean([o["bits"] for o in cell]) / row["ref_bits"])
            mean_bits[target] = float(np.mean(bits))
        assert mean_bits["strict"] >= mean_bits["intermediate"] >= mean_bits["lenient"], (seed, mean_bits)
        assert mean_bits["strict"] > mean_bits["lenient"], (seed, mean_bits)


def test_an_image_without_a_person_keeps_the_fixed_configuration():
    policy = SpiffPolicy("ncb", "lenient")
    rgb = np.zeros((64, 64, 3), np.uint8)
    d = policy.decide(rgb, np.zeros((64, 64), np.int64), 1e6, 4.0, (0.25, 0.2, False))
    assert (d.configuration, d.beta, d.keep, d.caption) == ("fixed", 0.25, 0.2, False)
    assert "person share 0.00 outside 0.15-0.80" in d.why_fixed
    assert d.to_dict()["engine_rate_bps"] == RATE_BPS[1]


def test_bad_settings_are_named(tmp_path):
    from sagin_hil.controllers.spiff.train import shipped_path

    with pytest.raises(ValueError, match="holds spiff actors, not ncb"):
        SpiffPolicy("ncb", actors=shipped_path("spiff"))
    with pytest.raises(ValueError, match=r"no actor of seed 99; it holds seeds \[0, 1, 2, 3, 4, 5, 6, 7\]"):
        SpiffPolicy("spiff", seed=99)
    with pytest.raises(FileNotFoundError, match="no SPIFF actors at .*nothing.safetensors"):
        SpiffPolicy("spiff", actors=tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="SPIFF target 'tight'; use one of strict, intermediate, lenient"):
        SpiffPolicy("spiff", "tight")
