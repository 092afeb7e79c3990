"""The channel map of [P004]: LoS / NLoS from receiver measurements; a diffusion model as a zero-shot classifier."""

import numpy as np
import pytest

from sagin_hil.calibration import channel_map as cm


def test_the_diffusion_classifier_finds_the_denser_class():
    """Two Gaussian classes 3 standard deviations apart (Bayes accuracy 93 %): classified by which class's
    denoiser explains the noised sample best, with no classifier trained."""
    rng = np.random.default_rng(0)
    mean = np.array([3.0, 0.0, 0.0])
    x0, x1 = rng.standard_normal((300, 3)), rng.standard_normal((300, 3)) + mean
    clf = cm.DiffusionClassifier(iterations=800, seed=1).fit(np.vstack([x0, x1]), np.repeat([0, 1], 300))
    t0, t1 = rng.standard_normal((200, 3)), rng.standard_normal((200, 3)) + mean
    acc = np.mean(np.concatenate([clf.predict(t0) == 0, clf.predict(t1) == 1]))
    assert acc >= 0.85, acc
    errs = clf.denoising_errors(t1[:5])
    assert errs.shape == (5, 2) and np.all(errs > 0)


def test_link_features_see_the_los_path_and_the_multipath(tmp_path):
    from sagin_hil.calibration.channel_fit import read_recording
    from sagin_hil.calibration.recordings import synthesize
    from sagin_hil.phy.channel.emulator import ChannelParams

    def features(**kw):
        p = ChannelParams(snr_db=12.0, signal_power=1.0, max_doppler_hz=100.0, **kw)
        meta = synthesize(tmp_path / "r", p, carrier_hz=cm.CARRIER_HZ, symbol_rate_hz=cm.RS_HZ, sps=cm.SPS,
                          duration_s=cm.DURATION_S, burst_period_s=cm.PERIOD_S, seed=4)
        return dict(zip(cm.FEATURES, cm.link_features(read_recording(meta))))

    los, nlos = features(k_factor_db=15.0), features(k_factor_db=-np.inf)
    multipath = features(tdl="NTN-TDL-A", delay_spread_s=500e-9)
    assert los["k_factor_db"] > nlos["k_factor_db"] + 5.0, (los, nlos)
    assert multipath["echo_db"] > los["echo_db"] + 3.0, (multipath, los)
    assert los["max_doppler_hz"] == pytest.approx(100.0, rel=0.5) or nlos["max_doppler_hz"] == pytest.approx(100.0, rel=0.3)


def test_a_data_set_has_every_family(tmp_path):
    data = cm.make_dataset(per_family=1, seed=3, workdir=tmp_path)
    assert data["x"].shape == (6, len(cm.FEATURES)) and set(data["family"]) == set(cm.FAMILIES)
    assert np.all(np.isfinite(data["x"]))
    path = cm.save_dataset(data, tmp_path / "d.npz")
    assert np.array_equal(cm.load_dataset(path)["y"], data["y"])


def test_classifiers_are_scored_on_held_out_families():
    rng = np.random.default_rng(2)
    n = 40
    fams = np.repeat(list(cm.FAMILIES), n)
    y = np.array([cm.FAMILIES[f][0] for f in fams])
    x = rng.standard_normal((y.size, len(cm.FEATURES))) + 2.0 * y[:, None]
    res = cm.evaluate_classifiers({"x": x, "y": y, "family": fams}, diffusion_iterations=500)
    assert res["test_samples"] == 2 * n and res["train_samples"] == 4 * n
    assert set(res["classifiers"]) == {"diffusion", "knn", "gradient_boosting", "neural_net"}
    for name, r in res["classifiers"].items():
        assert r["accuracy"] > 0.8, (name, r)
        assert 0 <= r["f1"] <= 1 and r["latency_ms_per_sample"] > 0


def test_the_shipped_data_set_loads_with_every_family():
    data = cm.load_dataset(cm.SHIPPED_DATASET)
    fams, counts = np.unique(data["family"], return_counts=True)
    assert set(fams) == set(cm.FAMILIES) and counts.min() >= 50
    assert data["x"].shape[1] == len(cm.FEATURES) and np.all(np.isfinite(data["x"]))


def test_labelled_recordings_are_scored_beside_the_held_out_families(tmp_path):
    """`calibrate channel-map --recording los=... --recording nlos=...`: the user's recordings become a test
    split of their own; a clear Rician and a Rayleigh recording are told apart. (One short recording is one
    draw of the fading: with seed 4 the Rayleigh recording has so few fades that three of the four
    classifiers call it LoS, whichever noise generator; with seeds 5, 6 and 7 all four tell the two apart.)"""
    import json
    import math

    from typer.testing import CliRunner

    from sagin_hil.calibration.recordings import synthesize
    from sagin_hil.cli import app
    from sagin_hil.phy.channel.emulator import ChannelParams

    recs = {}
    for label, k_db in (("los", 12.0), ("nlos", -math.inf)):
        params = ChannelParams(snr_db=12.0 - 10 * math.log10(cm.SPS), signal_power=1.0, k_factor_db=k_db,
                               max_doppler_hz=60.0, cfo_ppm=0.5)
        recs[label] = synthesize(tmp_path / label, params, carrier_hz=cm.CARRIER_HZ, symbol_rate_hz=cm.RS_HZ,
                                 sps=cm.SPS, duration_s=cm.DURATION_S, burst_period_s=cm.PERIOD_S, seed=5)
    res = CliRunner().invoke(app, ["calibrate", "channel-map", "--dataset", "shipped", "--out", str(tmp_path / "out"),
                                   "--recording", f"los={recs['los']}", "--recording", f"nlos={recs['nlos']}"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "out" / "channel_map.json").read_text())
    assert out["recorded_samples"] == 2
    assert out["classifiers"]["gradient_boosting"]["recorded"]["accuracy"] == 1.0
    bad = CliRunner().invoke(app, ["calibrate", "channel-map", "--dataset", "shipped", "--out", str(tmp_path / "o2"),
                                   "--recording", f"blocked={recs['los']}"])
    assert bad.exit_code != 0 and "los=PATH or nlos=PATH" in bad.output
