"""SPIFF's engine: the quantile Huber loss finds quantiles, Eq. 5 as written, the outcome environment's bits and
delay, resumable training, the Table IV evaluation and `reproduce paper-003` on the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sagin_hil.controllers.spiff.engine import (D_MAX_S, HIGH_LAMBDA, LAMBDA_DELAY, TARGETS, OutcomeEnv, aggregated_cost,
                                                cost_of, quantile_at, quantile_huber_loss)


def _synthetic_table(n_images: int = 4) -> dict:
    """Outcomes where keeping more patches costs bits and buys fidelity; PF_0 is noisy across the two seeds."""
    betas, keeps = [0.0, 1 / 3, 2 / 3, 1.0], [0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75]
    rows = []
    for i in range(n_images):
        grid = [[[{"bits": int(20000 + 40000 * k + 20000 * b + 500 * s), "pf": [min(1, 0.5 + 0.6 * k + 0.1 * b + 0.05 * s), 0.98],
                   "sf": [min(1, 0.7 + 0.4 * k), 0.99], "encode_s": 0.1, "decode_s": 0.1} for s in (0, 1)]
                 for k in keeps] for b in betas]
        rows.append({"tag": f"img{i}", "features": [0.6, 0.4, 0.3 + 0.1 * i], "ref_bits": 200000, "caption_bits": 160,
                     "caption": "a photo of a person", "grid": grid,
                     "jpeg": {"bits": 60000, "pf": [0.95, 0.97], "sf": [0.97, 0.99]},
                     "caption_only": {"bits": 256, "pf": [0.2, 0.0], "sf": [0.5, 0.4]}})
    return {"grid": {"betas": betas, "keeps": keeps, "seeds": [0, 1], "size_px": 256}, "skipped": [],
            "images": {"train": rows, "eval": rows[:2]}, "metrics": ["a", "b"], "proxy": True}


def test_quantile_huber_loss_recovers_the_quantiles_of_a_distribution():
    import torch

    torch.manual_seed(0)
    samples = torch.distributions.Exponential(torch.tensor(5.0)).sample((4000,))
    q = torch.zeros(1, 8, requires_grad=True)
    opt = torch.optim.Adam([q], lr=0.02)
    for _ in range(600):
        batch = samples[torch.randint(0, 4000, (256,))]
        loss = quantile_huber_loss(q.expand(256, 8), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tau = (np.arange(8) + 0.5) / 8
    want = -np.log(1 - tau) / 5.0  # the exponential's quantile function
    np.testing.assert_allclose(q.detach().numpy()[0], want, atol=0.03)
    assert float(quantile_at(torch.tensor(want)[None], 0.5)) == pytest.approx((want[3] + want[4]) / 2)


def test_aggregated_cost_is_eq5():
    import torch

    n = 4
    const = lambda v: torch.full((1, n), float(v))  # noqa: E731 - a point-mass distribution
    tgt = torch.tensor([[0.8, 0.9, 1.25 / 5, 5.0 / 5]])
    cost = aggregated_cost([const(0.3), const(0.7), const(0.95), const(0.99), const(1.0), const(1.1)], tgt)
    want = 0.3 + 1.25 * 0.1 + 0 + HIGH_LAMBDA * 0.01 + 0 + LAMBDA_DELAY * 0.1
    assert float(cost) == pytest.approx(want, rel=1e-5)


def test_outcomes_add_caption_bits_and_the_delay_of_eq1():
    table = _synthetic_table()
    env = OutcomeEnv(table, "train", seed=0)
    st = {"image": 0, "target": "strict", "rate_bps": 10_000.0}
    off = env.outcome(st, np.array([0.0, 0.0, 0.0]))
    on = env.outcome(st, np.array([0.0, 0.0, 1.0]))
    assert on[0] * 200000 - off[0] * 200000 == pytest.approx(160, abs=0.01)
    bits = off[0] * 200000
    # delay = encode + bits / rate (+-20 % log-normal fluctuation) + propagation + decode, over d_max
    assert 0.2 + bits / 10_000 / 1.8 < off[5] * D_MAX_S < 0.3 + bits / 10_000 * 1.8
    assert cost_of(off, "lenient") < cost_of(off, "strict")


def test_training_resumes_from_its_checkpoint(tmp_path):
    import torch

    from sagin_hil.controllers.spiff.train import train_engine

    torch.set_num_threads(1)
    table = _synthetic_table()
    straight, _ = train_engine("spiff", table, 0, 50, tmp_path / "a", checkpoint_every=25)
    train_engine("spiff", table, 0, 25, tmp_path / "b", checkpoint_every=25)
    resumed, _ = train_engine("spiff", table, 0, 50, tmp_path / "b", checkpoint_every=25)
    for (k, a), b in zip(straight.actor.state_dict().items(), resumed.actor.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_the_probe_cost_is_the_noise_free_actors_on_fixed_draws():
    """Common random numbers: the same actor scores the same twice and exploration noise does not enter; the value
    is the mean cost of the actor's actions on PROBE_STATES states drawn from PROBE_SEED."""
    import torch

    from sagin_hil.controllers.spiff.engine import Engine, EngineConfig
    from sagin_hil.controllers.spiff.train import PROBE_SEED, PROBE_STATES, probe_cost

    def by_hand(action):
        env = OutcomeEnv(table, "train", seed=PROBE_SEED)
        states = [env.sample_state() for _ in range(PROBE_STATES)]
        return np.mean([cost_of(env.outcome(st, action(env, st)), st["target"]) for st in states])

    table = _synthetic_table()
    eng = Engine(EngineConfig(kind="ncb"), seed=0)
    first = probe_cost(eng, table)
    eng.act(np.zeros(4, np.float32), np.zeros(4, np.float32), explore=True)  # moves the noise, not the probe
    assert probe_cost(eng, table) == first
    assert first == pytest.approx(by_hand(lambda env, st: eng.act(env.image_part(st), env.target_part(st))))
    with torch.no_grad():
        eng.actor[-1].bias.fill_(20.0)  # sigmoid -> 1: the whole frame, the most patches, caption on
    assert probe_cost(eng, table) == pytest.approx(by_hand(lambda env, st: np.ones(3)))
    assert probe_cost(eng, table) != pytest.approx(first)


def test_evaluation_scores_the_fixed_baselines_exactly():
    from sagin_hil.controllers.spiff.train import evaluate

    res = evaluate(_synthetic_table(), {"spiff": [], "ncb": []}, states=3, n_boot=50)
    assert set(res) == set(TARGETS)
    j, c = res["strict"]["jpeg"], res["lenient"]["caption"]
    assert j["p_pf"] == 1.0 and j["p_sf"] == 1.0 and j["saving"] == pytest.approx(1 - 60000 / 200000)
    assert c["p_pf"] == 0.0 and c["p_sf"] == 0.0 and c["saving"] == pytest.approx(1 - 256 / 200000)
    assert (j["pf_person"], j["sf_person"]) == pytest.approx((0.97, 0.99))  # rank 1: the second of each pair
    assert (c["pf_person"], c["sf_person"]) == pytest.approx((0.0, 0.4))


@pytest.mark.slow
def test_engine_learns_to_keep_more_patches_for_stricter_targets(tmp_path):
    """On the synthetic table, PF_0 >= 0.8 needs p(0) >= 0.5, lenient PF_0 >= 0.4 needs nothing: a trained actor
    keeps more patches under the strict target than under the lenient one."""
    import torch

    from sagin_hil.controllers.spiff.train import train_engine

    torch.set_num_threads(1)
    table = _synthetic_table()
    eng, curves = train_engine("spiff", table, 0, 1500, tmp_path)
    env = OutcomeEnv(table, "eval", seed=1)
    keep = {}
    for target in ("strict", "lenient"):
        st = env.sample_state(target=target, image=0)
        keep[target] = eng.act(env.image_part(st), env.target_part(st))[1]
    assert keep["strict"] > keep["lenient"] + 0.2, keep
    assert curves["realised"][-1] < curves["realised"][0]
    assert len(curves["probe"]) == 6 and curves["probe"][-1] < curves["probe"][0]


def test_reproduce_paper_003_writes_table4(tmp_path):
    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["reproduce", "paper-003", "--out", str(tmp_path), "--quick", "--states", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "paper-003.json").read_text())
    t4 = out["table4"]
    assert set(t4) == {"strict", "intermediate", "lenient"}
    for target in t4:
        assert set(t4[target]) == {"spiff", "ncb", "jpeg", "caption", "hindsight"}
        d = out["spiff_vs_ncb"][target]["saving"]
        assert d["ci95"][0] <= d["mean"] <= d["ci95"][1]
        assert d["mean"] == pytest.approx(t4[target]["spiff"]["saving"] - t4[target]["ncb"]["saving"], abs=1e-6)
        for r in t4[target].values():
            assert 0 <= r["p_pf"] <= 1 and 0 <= r["p_sf"] <= 1 and r["saving"] < 1
            assert r["p_pf_ci95"][0] <= r["p_pf"] <= r["p_pf_ci95"][1]
        assert out["checks"][target]["both_ahead_of_caption_only"]
    assert out["setup"]["held_out_images"] and all(t.startswith("grace_hopper") for t in out["setup"]["held_out_images"])
    assert (tmp_path / "paper-003.png").stat().st_size > 10_000


def test_hindsight_picks_each_images_least_cost_configuration():
    """Brute force over the grid with the scalar cost: the hindsight action is the configuration of least mean cost
    over the image's seeds at the state's nominal rate (caption off), and it differs between the targets."""
    from sagin_hil.controllers.spiff.engine import PROPAGATION_S
    from sagin_hil.controllers.spiff.train import hindsight_action

    table = _synthetic_table()
    env = OutcomeEnv(table, "eval", seed=3)
    row = table["images"]["eval"][1]
    chosen = {}
    for target in TARGETS:
        st = {"image": 1, "target": target, "rate_bps": 8_000.0}
        best, arg = np.inf, None
        for bi, b in enumerate(env.betas):
            for ki, k in enumerate(env.keeps):
                cs = [cost_of([o["bits"] / row["ref_bits"], o["pf"][0], o["sf"][0], o["pf"][1], o["sf"][1],
                               (o["encode_s"] + o["bits"] / 8_000.0 + PROPAGATION_S + o["decode_s"]) / D_MAX_S], target)
                      for o in row["grid"][bi][ki]]
                if np.mean(cs) < best:
                    best, arg = np.mean(cs), (b, k)
        a = hindsight_action(row, st, env)
        assert tuple(a[:2]) == arg and a[2] == 0.0
        chosen[target] = arg
    assert chosen["strict"][1] > chosen["lenient"][1]  # PF_0 >= 0.8 needs patches, >= 0.4 none


def test_paired_difference_is_zero_against_itself_and_finds_a_shift():
    from sagin_hil.controllers.spiff.train import METRICS, evaluate, paired_difference

    res = evaluate(_synthetic_table(), {"spiff": [], "ncb": []}, states=3, n_boot=50)["strict"]
    same = paired_difference(res["jpeg"], res["jpeg"])
    assert all(v["mean"] == 0 and v["ci95"] == [0, 0] for v in same.values())
    shift = np.zeros(len(METRICS))
    shift[METRICS.index("saving")] = 0.05
    shifted = dict(res["jpeg"], per_image=(np.asarray(res["jpeg"]["per_image"]) + shift).tolist())
    d = paired_difference(shifted, res["jpeg"])
    assert d["saving"]["mean"] == pytest.approx(0.05) and d["saving"]["ci95"] == pytest.approx([0.05, 0.05])
    assert set(d) == set(METRICS)
    h = res["hindsight"]  # a reference beside the paper's schemes; on this table it keeps patches only as needed
    assert h["p_pf"] == 1.0 and h["cost"] < res["jpeg"]["cost"]


def test_the_risk_level_is_checked_and_kept_with_the_checkpoint(tmp_path):
    import torch

    from sagin_hil.controllers.spiff.engine import Engine, EngineConfig
    from sagin_hil.controllers.spiff.train import train_engine

    with pytest.raises(ValueError, match="alpha = 0.7"):
        Engine(EngineConfig(alpha=0.7))
    torch.set_num_threads(1)
    train_engine("spiff", _synthetic_table(), 0, 25, tmp_path, checkpoint_every=25)
    with pytest.raises(ValueError, match=r"trained with alpha = 0.1, not 0.3.*another --out"):
        train_engine("spiff", _synthetic_table(), 0, 50, tmp_path, alpha=0.3)
    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["train", "spiff", "--alpha", "0.7", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--alpha = 0.7" in res.output


@pytest.mark.slow
def test_train_spiff_command_trains_saves_and_resumes(tmp_path):
    from sagin_hil.cli import app
    from sagin_hil.controllers.spiff.train import load_actors

    table = tmp_path / "outcomes.json"
    table.write_text(json.dumps(_synthetic_table()))
    args = ["train", "spiff", "--outcomes", str(table), "--no-measure", "--steps", "40", "--seeds", "2", "--workers", "1",
            "--no-ship", "--no-mode-row", "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "spiff-seed1: realised cost" in res.output and "ncb-seed0" in res.output
    actors = load_actors("spiff", tmp_path / "run" / "spiff-actors.safetensors")
    assert len(actors) == 2 and (tmp_path / "run" / "curves.png").exists()
    res = CliRunner().invoke(app, args[:6] + ["80"] + args[7:])  # more steps: resumes from the checkpoints
    assert res.exit_code == 0, res.output
    assert len(load_actors("ncb", tmp_path / "run" / "ncb-actors.safetensors")) == 2
    rep = CliRunner().invoke(app, ["reproduce", "paper-003", "--out", str(tmp_path / "p003"), "--states", "1",
                                   "--actors", str(tmp_path / "run")])
    assert rep.exit_code == 0 and "evaluating 2 SPIFF and 2 NCB seeds" in rep.output, rep.output
    bad = CliRunner().invoke(app, ["train", "spiff", "--steps", "0"])
    assert bad.exit_code != 0 and "--steps = 0" in bad.output


def _subjects_table() -> dict:
    """The synthetic table's images as variants of the three photographs, tagged as the measured table tags them."""
    t = _synthetic_table(6)
    rows = t["images"]["train"]
    for i, r in enumerate(rows):
        r["tag"] = f"{('astronaut', 'camera', 'grace_hopper')[i // 2]}@1.00:0.0,{i % 2}.0"
    t["images"] = {"train": rows[:4], "eval": rows[4:]}
    return t


def test_hold_out_regroups_the_table_by_photograph():
    from sagin_hil.controllers.spiff.outcomes import hold_out

    t = _subjects_table()
    assert hold_out(t)["images"] is t["images"] and hold_out(t)["held_out"] == "grace_hopper"  # the measured split
    f = hold_out(t, "astronaut")
    assert [r["tag"] for r in f["images"]["eval"]] == ["astronaut@1.00:0.0,0.0", "astronaut@1.00:0.0,1.0"]
    assert [r["tag"].split("@")[0] for r in f["images"]["train"]] == ["camera"] * 2 + ["grace_hopper"] * 2
    with pytest.raises(ValueError, match="'lena' has no images in the outcome table; use one of astronaut, camera, grace"):
        hold_out(t, "lena")


def test_each_fold_is_evaluated_on_the_photograph_it_held_out_and_the_folds_pool(tmp_path):
    import torch

    from sagin_hil.controllers.spiff.outcomes import hold_out
    from sagin_hil.controllers.spiff.train import actors_metadata, train_all
    from sagin_hil.flowgraphs.reproduce_003 import reproduce_paper_003

    torch.set_num_threads(1)
    t = _subjects_table()
    (tmp_path / "outcomes.json").write_text(json.dumps(t))
    with pytest.raises(ValueError, match="'astronaut' held out cannot replace the shipped"):
        train_all(hold_out(t, "astronaut"), tmp_path / "x", 5, 1, ship=True)
    for subject in ("astronaut", "camera", "grace_hopper"):
        train_all(hold_out(t, subject), tmp_path / subject, 20, 2, ship=False)
        assert actors_metadata(tmp_path / subject / "spiff-actors.safetensors")["held_out"] == subject
    folds = [tmp_path / s for s in ("astronaut", "camera", "grace_hopper")]
    res = reproduce_paper_003(tmp_path / "p", states=2, outcomes=tmp_path / "outcomes.json", folds=folds,
                              log=lambda _: None)
    assert res["setup"]["held_out_images"] == [r["tag"] for r in sorted(
        t["images"]["train"] + t["images"]["eval"], key=lambda r: r["tag"])]
    assert res["setup"]["train_images"] == {"astronaut": 4, "camera": 4, "grace_hopper": 4}
    for target, schemes in res["table4"].items():
        for scheme, r in schemes.items():
            parts = [res["folds"][s]["table4"][target][scheme] for s in res["folds"]]
            assert r["saving"] == pytest.approx(np.mean([p["saving"] for p in parts]))  # 2 images per fold
            assert len(r["per_image"]) == 6 and "per_image" not in parts[0]
            assert r["per_seed"][-1]["cost"] == pytest.approx(np.mean([p["per_seed"][-1]["cost"] for p in parts]))
    alone = reproduce_paper_003(tmp_path / "a", states=2, outcomes=tmp_path / "outcomes.json", actors_dir=folds[0],
                                log=lambda _: None)
    assert alone["table4"]["strict"]["spiff"]["p_sf"] == res["folds"]["astronaut"]["table4"]["strict"]["spiff"]["p_sf"]
    with pytest.raises(ValueError, match="two folds hold out camera"):
        reproduce_paper_003(tmp_path / "d", states=1, outcomes=tmp_path / "outcomes.json", folds=folds[1:2] * 2)


def test_reproduce_cross_subject_pools_a_fold_with_the_shipped_actors(tmp_path):
    import torch

    from sagin_hil.cli import app
    from sagin_hil.controllers.spiff.outcomes import hold_out, load_outcomes
    from sagin_hil.controllers.spiff.train import train_all

    torch.set_num_threads(1)
    empty = CliRunner().invoke(app, ["reproduce", "paper-003", "--out", str(tmp_path / "p"), "--cross-subject",
                                     str(tmp_path)])
    assert empty.exit_code == 2 and "no `train spiff --hold-out S" in empty.output
    train_all(hold_out(load_outcomes(), "camera"), tmp_path / "folds" / "camera", 10, 1, ship=False)
    res = CliRunner().invoke(app, ["reproduce", "paper-003", "--out", str(tmp_path / "p"), "--states", "1",
                                   "--cross-subject", str(tmp_path / "folds")])
    assert res.exit_code == 0, res.output
    assert "images (grace_hopper)" in res.output and "images (camera)" in res.output
    assert "held out camera: spiff - ncb saving strict" in res.output
    out = json.loads((tmp_path / "p" / "paper-003.json").read_text())
    assert set(out["folds"]) == {"grace_hopper", "camera"}
    n = {s: sum(t.startswith(s) for t in out["setup"]["held_out_images"]) for s in out["folds"]}
    assert n["camera"] > 5 and n["grace_hopper"] > 5
    assert len(out["table4"]["lenient"]["jpeg"]["per_image"]) == n["camera"] + n["grace_hopper"]


def test_train_spiff_refuses_to_ship_a_fold_and_names_the_photographs(tmp_path):
    from sagin_hil.cli import app

    ship = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["train", "spiff", "--hold-out", "camera", "--ship", "--out",
                                                          str(tmp_path)])
    assert ship.exit_code == 2 and "the shipped actors hold out grace_hopper" in ship.output
    bad = CliRunner().invoke(app, ["train", "spiff", "--hold-out", "lena", "--no-measure", "--no-mode-row", "--out",
                                   str(tmp_path)])
    assert bad.exit_code == 2 and "'lena' has no images" in bad.output and "astronaut, camera, grace_hopper" in bad.output


def test_the_stored_cross_subject_run_pools_its_folds_and_keeps_the_shipped_one():
    """docs/spiff.md's leave-one-subject-out table: the pooled values are the image-weighted folds', its
    grace_hopper fold is the stored single-fold reproduction, and pooled SPIFF meets the targets at least as often
    as NCB."""
    from pathlib import Path

    docs = Path(__file__).parents[1] / "docs" / "reproductions"
    out = json.loads((docs / "paper-003-cross-subject" / "paper-003.json").read_text())
    single = json.loads((docs / "paper-003" / "paper-003.json").read_text())
    tags = out["setup"]["held_out_images"]
    n = {s: sum(t.startswith(s + "@") for t in tags) for s in out["folds"]}
    assert n == {"grace_hopper": 24, "astronaut": 23, "camera": 14} and len(tags) == 61
    for target, schemes in out["table4"].items():
        assert out["checks"][target]["spiff_meets_at_least_as_often_as_ncb"]
        for scheme, r in schemes.items():
            folds = {s: f["table4"][target][scheme] for s, f in out["folds"].items()}
            assert r["saving"] == pytest.approx(sum(n[s] * f["saving"] for s, f in folds.items()) / 61)
            assert folds["grace_hopper"]["p_sf"] == single["table4"][target][scheme]["p_sf"]
            assert folds["grace_hopper"]["saving"] == single["table4"][target][scheme]["saving"]
