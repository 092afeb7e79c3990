"""Sweeps on Dask: grid parsing, pure points, a killed worker, failing points, resuming, summary and compare."""

import json
import logging
import os
import signal

import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app
from sagin_hil.flowgraphs.config import FlowgraphError, load_flowgraph
from sagin_hil.flowgraphs.sweep import parse_grid, run_point, run_sweep, sweep_points

runner = CliRunner()
TINY = ["images.size_px=64"]  # sample-level points of about a second


def _metrics(record):
    return record["result"]["metrics"]


def test_grid_values_split_outside_brackets_and_bad_items_are_named():
    assert parse_grid(["tasks.rate_hz=0.05, 0.1", 'controller.modes=["mode1"],["mode1", "mode3_2"]']) == {
        "tasks.rate_hz": ["0.05", "0.1"], "controller.modes": ['["mode1"]', '["mode1", "mode3_2"]']}
    with pytest.raises(FlowgraphError, match=r"--grid 'tasks.rate_hz': give key=v1,v2"):
        parse_grid(["tasks.rate_hz"])
    with pytest.raises(FlowgraphError, match="an empty value"):
        parse_grid(["tasks.rate_hz=0.1,"])
    with pytest.raises(FlowgraphError, match="given twice"):
        parse_grid(["seed=1", "seed=2"])


def test_points_are_validated_before_anything_runs_and_their_ids_are_stable():
    fg = load_flowgraph(None)
    pts = sweep_points(fg, {"images.count": ["1", "2"]}, seeds=3)
    assert [(p["params"]["images.count"], p["seed"]) for p in pts] == [(c, s) for c in "12" for s in (1, 2, 3)]
    assert len({p["id"] for p in pts}) == 6
    assert [p["id"] for p in sweep_points(fg, {"images.count": ["1", "2"]}, seeds=3)] == [p["id"] for p in pts]
    assert pts[4]["reproduce"] == "sagin-hil run default --seed 2 --set 'images.count=2'"
    with pytest.raises(FlowgraphError, match=r"images.count.*'many'"):
        sweep_points(fg, {"images.count": ["1", "many"]}, seeds=1)
    with pytest.raises(FlowgraphError, match="--seeds 0"):
        sweep_points(fg, {}, seeds=0)
    # a swept controller runs alone at its point
    algo = sweep_points(load_flowgraph("sagin-000"), {"controller.algo": ["greedy"]}, seeds=1)[0]
    assert algo["flowgraph"].controller.compare == []


def test_run_point_is_pure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fg = load_flowgraph(None).with_overrides(sets=["images.count=1", *TINY])
    a, b = run_point(fg, seed=3), run_point(fg, seed=3)
    assert a["run_id"] != b["run_id"] and a["seed"] == 3
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["controllers"]["link-adaptation"]["tasks"] == 1
    assert list(tmp_path.iterdir()) == []  # nothing written
    abstraction = run_point(load_flowgraph("sagin-000"), seed=2, fidelity="abstraction")
    assert abstraction == {**run_point(load_flowgraph("sagin-000"), seed=2, fidelity="abstraction"),
                           "run_id": abstraction["run_id"]}
    assert set(abstraction["metrics"]["controllers"]) == {"link-adaptation", "greedy", "random"}


def test_a_sweep_with_a_killed_worker_completes_equal_to_a_serial_run(tmp_path):
    from dask.distributed import Client, LocalCluster

    fg = load_flowgraph(None)
    grid, sets = {}, [*TINY, "images.count=1"]  # 3 seeds: one finishes while the other worker is mid-point
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker(done, total):  # after the first point: kill a worker in the middle of one
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if done >= 1 and not killed and busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])

        summary = run_sweep(fg, grid, 3, tmp_path, sets=sets, client=client, progress=kill_a_busy_worker)
    assert killed, "no worker was busy when the first point finished"
    assert summary["failed"] == {} and summary["finished"] == 3
    points = {p["id"]: p for p in sweep_points(fg, grid, 3, sets=sets)}
    for pid, p in points.items():
        stored = json.loads((tmp_path / "points" / f"{pid}.json").read_text())
        assert stored["meta"]["params"] == p["params"] and stored["meta"]["seed"] == p["seed"]
        assert _metrics(stored) == run_point(p["flowgraph"])["metrics"], p["params"]
    # a re-run finds every point done and starts no cluster
    again = run_sweep(fg, grid, 3, tmp_path, sets=sets, workers=1)
    assert again["engine"]["ran"] == 0 and again["engine"]["skipped"] == 3
    assert again["rows"] == summary["rows"]


def test_cli_sweep_reports_a_failing_point_while_the_others_finish_then_compare(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "sagin-000", "--fidelity", "abstraction", "--grid", "tasks.rate_hz=0.05,0.1",
            # a negative loss passes the flowgraph's check and fails when its point loads the scenario
            "--grid", "scenario.space_air.excess_loss_db=0,-5", "--seeds", "2", "--workers", "2", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "4 of 8 points" in res.stdout
    assert "4 point(s) failed" in res.stderr and "excess_loss_db = -5" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["failed"]) == 4 and all(
        f["params"]["scenario.space_air.excess_loss_db"] == "-5" and "ScenarioError" in f["error"]
        for f in summary["failed"].values())
    # each row: the mean and Student-t 95 % interval of its seeds' points
    records = [json.loads(p.read_text()) for p in (out / "points").glob("*.json")]
    assert len(records) == 4
    row = next(r for r in summary["rows"] if r["params"]["tasks.rate_hz"] == "0.1" and r["controller"] == "greedy")
    scc = [_metrics(r)["controllers"]["greedy"]["mean_scc"] for r in records
           if r["meta"]["params"]["tasks.rate_hz"] == "0.1"]
    assert row["seeds"] == 2 and row["mean"]["mean_scc"] == pytest.approx(sum(scc) / 2)
    assert row["ci95"]["mean_scc"] == pytest.approx(12.706205 * abs(scc[0] - scc[1]) / 2, rel=1e-5)
    for plot in summary["plots"]:
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    assert "| 0.05 |" in (out / "summary.md").read_text()

    # a run folder beside the sweep: compare puts them side by side
    from sagin_hil.flowgraphs.report import clean_json
    from sagin_hil.flowgraphs.runner import run_flowgraph

    run_dir = tmp_path / "one-run"
    run_dir.mkdir()
    fg = load_flowgraph(None).with_overrides(sets=["images.count=1", *TINY])
    (run_dir / "summary.json").write_text(json.dumps(clean_json(run_flowgraph(fg, report=False).summary)))
    res = runner.invoke(app, ["compare", str(out), str(run_dir), "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    sweep_in, run_in = cmp["inputs"]
    assert (sweep_in["kind"], sweep_in["points"], run_in["kind"], run_in["points"]) == ("sweep", 4, "run", 1)
    all_greedy = [_metrics(r)["controllers"]["greedy"]["mean_scc"] for r in records]
    assert sweep_in["controllers"]["greedy"]["mean"]["mean_scc"] == pytest.approx(sum(all_greedy) / 4)
    assert run_in["controllers"]["link-adaptation"]["tasks"] == 1 and "mode1" in run_in["modes"]
    assert "sweep" in res.stdout and "one-run" in res.stdout
    assert all((tmp_path / "cmp" / p).is_file() for p in cmp["plots"])
    bad = runner.invoke(app, ["compare", str(tmp_path / "nothing-here")])
    assert bad.exit_code == 2 and "neither a run folder" in bad.output and "nothing-here" in bad.output


def test_cli_sweep_names_a_bad_grid_value_and_an_absent_scheduler(tmp_path):
    res = runner.invoke(app, ["sweep", "default", "--grid", "images.count=1,lots", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "images.count" in res.output and "'lots'" in res.output
    res = runner.invoke(app, ["sweep", "default", "--fidelity", "exact", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--fidelity 'exact'" in res.output and "abstraction" in res.output
    res = runner.invoke(app, ["sweep", "default", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no Dask scheduler answers at 'tcp://127.0.0.1:9'" in res.output


def test_a_point_that_kills_every_worker_it_runs_on_is_given_up_and_named(tmp_path):
    import dask
    from dask.distributed import Client, LocalCluster

    from sagin_hil.sweep_engine import run_points

    # os._exit(status=1) as the point: its worker process dies each time; one death per task allowed here
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        out = run_points("os:_exit", {"a": {"status": 1}, "b": {"status": 1}}, tmp_path, client=client, batch_size=2)
    # the batch of both died, then each point alone: both named, nothing stored
    assert set(out.failed) == {"a", "b"} and all("worker died" in e for e in out.failed.values())
    assert out.results == {} and list(tmp_path.glob("*.json")) == []


def test_a_kept_point_is_reused_only_for_the_same_arguments(tmp_path):
    """Resuming into a folder written with other settings must not hand back their results."""
    from dask.distributed import Client, LocalCluster

    from sagin_hil.sweep_engine import run_points

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        first = run_points("builtins:dict", {"p": {"seeds": [0, 1]}}, tmp_path, client=client)  # dict(**args)
        same = run_points("builtins:dict", {"p": {"seeds": (0, 1)}}, tmp_path, client=client)  # stored as a list
        other = run_points("builtins:dict", {"p": {"seeds": [0, 1, 2]}}, tmp_path, client=client)
    assert first.results["p"]["result"] == first.results["p"]["args"] == {"seeds": [0, 1]}
    assert (same.skipped, same.ran) == (1, 0)
    assert (other.skipped, other.ran, other.results["p"]["result"]) == (0, 1, {"seeds": [0, 1, 2]})
