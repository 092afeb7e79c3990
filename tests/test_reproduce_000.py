"""`sagin-hil reproduce paper-000`: [P000]'s orderings checked on the stored full run (docs/reproductions/
paper-000.json, written by the command) and, slowly, on a fresh --quick run; the world's knobs each figure
turns are the ones named."""

import json
from pathlib import Path

import numpy as np
import pytest

import sagin_hil

STORED = Path(sagin_hil.__file__).parent / "docs" / "reproductions" / "paper-000.json"


def _series(res, fig, label):
    return np.array([p["scc_mean"] for p in res["figures"][fig]["series"][label]])


def check_orderings(res):
    pol = res["policies"]
    m = {k: v["scc_mean"] for k, v in pol.items()}
    # the bar: DSAC >= MAPPO >= greedy >= random, DSAC's interval above greedy's
    assert m["dsac"] >= m["mappo"] >= m["greedy"] >= m["random"], m
    assert pol["dsac"]["scc_ci95"][0] > pol["greedy"]["scc_ci95"][1]
    # Fig. 7-8: every single mode gains from a looser deadline and loses to a stricter quality floor
    for mode in ("mode1", "mode3_1", "mode3_2", "mode3_3"):
        d, q = _series(res, "fig7_scc_vs_d_max", mode), _series(res, "fig8_scc_vs_q_min", mode)
        assert d[-1] > d[0] and q[-1] < q[0], (mode, d, q)
    # Fig. 9: a higher minimum elevation costs DSAC SCC; DSAC >= MAPPO there; more modes never hurt
    dsac9 = _series(res, "fig9_scc_vs_min_elevation", "DSAC")
    assert dsac9[-1] < dsac9[0]
    assert np.all(dsac9 >= _series(res, "fig9_scc_vs_min_elevation", "DSAC & Mode 3") - 0.01)
    # Fig. 10: more satellite power never hurts, and dropping Mode 1 costs SCC once the link budget allows it
    p10, no1 = _series(res, "fig10_scc_vs_p_s", "DSAC"), _series(res, "fig10_scc_vs_p_s", "DSAC without Mode 1")
    assert p10[-1] >= p10[0] and p10[-1] > no1[-1]
    for name in ("dsac", "mappo", "greedy"):
        assert 0.0 < res["sample_level"][name]["scc_mean"] <= 1.0
    assert res["sample_level"]["dsac"]["scc_mean"] >= res["sample_level"]["greedy"]["scc_mean"] - 1e-9


def test_the_stored_full_reproduction_keeps_the_orderings():
    res = json.loads(STORED.read_text())
    assert not res["quick"] and len(res["held_out_seeds"]) >= 6
    check_orderings(res)


def test_the_knobs_reach_the_world():
    from sagin_hil.controllers.abstraction import SaginWorld
    from sagin_hil.flowgraphs.reproduce import world_kwargs

    kw = world_kwargs({"min_elevation_deg": 60.0, "sat_power_w": 0.1, "modes": ["mode3_3"], "weight_quality": 0.2,
                       "deadline_s": 5.0, "quality_min_db": [12.0, 14.0], "horizon_s": 20.0})
    w = SaginWorld(1, **kw)
    assert w.tables.min_elevation_deg == 60.0 and w.modes == ("mode3_3",) and w.weight_quality == 0.2
    assert w.deadline_range_s == (5.0, 5.0) and w.quality_range_db == (12.0, 14.0)
    base = SaginWorld(1, horizon_s=20.0)
    assert np.allclose(w.tables.sa_snr_db, base.tables.sa_snr_db - 10.0)  # 1 W -> 0.1 W: 10 dB less
    assert w.tables.sa_visible.sum() < base.tables.sa_visible.sum()


@pytest.mark.slow
def test_quick_reproduction_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from sagin_hil.cli import app

    res = CliRunner().invoke(app, ["reproduce", "paper-000", "--out", str(tmp_path), "--quick"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "paper-000.json").read_text())
    for name in ("dsac", "mappo", "greedy", "random"):
        lo, hi = out["policies"][name]["scc_ci95"]
        assert lo <= out["policies"][name]["scc_mean"] <= hi
    assert (tmp_path / "fig9_scc_vs_min_elevation.png").read_bytes()[:4] == b"\x89PNG"
    assert set(out["figures"]) == {"fig6_scc_vs_xi_q", "fig7_scc_vs_d_max", "fig8_scc_vs_q_min",
                                   "fig9_scc_vs_min_elevation", "fig10_scc_vs_p_s"}
    # the points ran on the sweep engine and were kept: a re-run takes them as they are
    kept = sorted((tmp_path / "points").glob("*.json"))
    assert len(kept) >= 5 + 5 * 2
    again = CliRunner().invoke(app, ["reproduce", "paper-000", "--out", str(tmp_path), "--quick", "--no-sample-level"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "paper-000.json").read_text())["policies"] == out["policies"]
