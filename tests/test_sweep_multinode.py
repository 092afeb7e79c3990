"""The multi-node recipe of docs/sweeps.md on one machine: `dask scheduler` and two `dask worker` processes
on 127.0.0.1, and `sagin-hil sweep --scheduler` through them with no other change."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagin_hil.cli import app

DASK = Path(sys.executable).with_name("dask")


def _wait_for(path: Path, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not path.is_file():
        if time.monotonic() > end:
            raise TimeoutError(f"{path} did not appear in {timeout_s} s")
        time.sleep(0.1)


@pytest.fixture
def scheduler_and_two_workers(tmp_path):
    """(address, worker processes): a scheduler on a free port of 127.0.0.1 and two single-threaded workers."""
    info = tmp_path / "scheduler.json"
    log = (tmp_path / "dask.log").open("w")
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], stdout=log, stderr=log)]
    try:
        _wait_for(info)
        address = json.loads(info.read_text())["address"]
        for name in ("node-a", "node-b"):
            procs.append(subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--name", name, "--no-dashboard", "--host", "127.0.0.1"],
                                          stdout=log, stderr=log))
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def test_a_sweep_runs_through_a_scheduler_and_two_worker_processes(scheduler_and_two_workers, tmp_path):
    address, procs = scheduler_and_two_workers
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["sweep", "sagin-000", "--fidelity", "abstraction", "--grid",
                                   "tasks.rate_hz=0.05,0.1", "--seeds", "4", "--scheduler", address, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "8 of 8 points" in res.stdout and "on 2 workers" in res.stdout
    records = [json.loads(p.read_text()) for p in (out / "points").glob("*.json")]
    assert len(records) == 8
    worker_pids = {int(r["worker"].rsplit(":", 1)[1]) for r in records}
    # the points ran in the worker processes (children of the `dask worker` nannies), not in this one
    assert len(worker_pids) == 2, f"the points did not spread over both workers: {worker_pids}"
    assert not worker_pids & ({p.pid for p in procs} | {os.getpid()})
    assert all(p.poll() is None for p in procs)  # the cluster outlives the sweep: the client only disconnects
