"""The sweep engine: independent points as tasks on dask.distributed, each result kept as soon as it is in.

`run_points("module:function", points, out_dir)` calls function(**args) once per point on a Dask cluster
(a LocalCluster of single-threaded worker processes by default, or the scheduler at `scheduler`) and
writes out_dir/<point id>.json the moment a point's result reaches the client, so an interrupted sweep
loses only the points in flight and a re-run skips the points already there.

Failures: a point whose worker dies is run again on another worker by the scheduler (up to
ALLOWED_WORKER_DEATHS times; a batch that loses its worker is then split, so only the point that kills
workers is given up); a point that raises is run again alone, up to `max_attempts` times, and then
reported with its error while the others finish. Cheap points are batched, several per task, so the
per-task cost of the scheduler is shared (`batch_size`).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["run_points", "PointsOutcome", "open_client", "ALLOWED_WORKER_DEATHS", "SweepError"]

ALLOWED_WORKER_DEATHS = 2  # a task whose worker dies is retried this many times before KilledWorker
BATCHES_PER_WORKER = 4  # cheap points: enough batches per worker to balance the load, few enough to amortise
MAX_BATCH = 64


class SweepError(RuntimeError):
    """A sweep that cannot start (no scheduler at the address, dask missing); the message says what to do."""


@dataclass
class PointsOutcome:
    """results: point id -> the stored record ({"id", "meta", "args", "result", "wall_s", "worker"}); failed: point
    id -> the error that made it fail every attempt; skipped: points found finished in out_dir; ran: points
    computed now; workers: workers the cluster had; batch_size: points per task; wall_s: the engine's time."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    ran: int = 0
    workers: int = 0
    batch_size: int = 1
    wall_s: float = 0.0


def _resolve(fn: str) -> Callable[..., dict[str, Any]]:
    module, _, attr = fn.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_batch(fn: str, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """On a worker: fn(**args) for each (point id, args); a point that raises gives {"id", "error"}, so one
    bad point does not cost its batch the others."""
    func = _resolve(fn)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    out = []
    for pid, args in items:
        t0 = time.perf_counter()
        try:
            result = func(**args)
        except Exception as exc:  # reported per point, with where it happened
            where = traceback.extract_tb(exc.__traceback__)[-1]
            out.append({"id": pid, "error": f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:"
                        f"{where.lineno}, worker {worker})"})
            continue
        out.append({"id": pid, "result": result, "wall_s": time.perf_counter() - t0, "worker": worker})
    return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader (or a re-run after a crash) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=True))
    os.replace(tmp, path)


def _as_json(args: dict[str, Any]) -> Any:
    """args as a stored point holds them (tuples become lists; a model as its fields, anything else as its
    repr), so the two compare equal."""
    def plain(o: Any) -> Any:
        return o.model_dump(mode="json") if hasattr(o, "model_dump") else repr(o)

    return json.loads(json.dumps(args, allow_nan=True, default=plain))


def read_point(path: Path) -> dict[str, Any] | None:
    """A stored point, or None when the file is not a finished point (then it is run again)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "result" in data else None


def _reachable(address: str) -> None:
    """Raise OSError when nothing listens at tcp://HOST:PORT; ValueError when the address has no port."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("give it as tcp://HOST:PORT")
    socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()


def open_client(scheduler: str | None = None, workers: int | None = None):
    """(client, cluster): a Client of the scheduler at `scheduler` (cluster None), or of a new LocalCluster
    of `workers` single-threaded processes (default: one per CPU core). Close both when done."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise SweepError(f"sweeps need dask.distributed ({exc}); install it: pip install 'dask[distributed]'") from None
    if scheduler is not None:
        try:
            _reachable(scheduler)  # a refused port fails now, not after the client's connect timeout
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"no Dask scheduler answers at {scheduler!r} ({exc}); start one with `dask scheduler` "
                             "and give its tcp://HOST:PORT, or leave out --scheduler for a local cluster") from None
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise SweepError(f"workers = {n}: give at least 1")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS}):
        # the scheduler's status page on a free port of 127.0.0.1: two local sweeps at once never clash
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _batch_size(n_points: int, n_workers: int, cheap: bool) -> int:
    if not cheap:
        return 1
    return max(1, min(MAX_BATCH, math.ceil(n_points / (BATCHES_PER_WORKER * max(1, n_workers)))))


def run_points(fn: str, points: dict[str, dict[str, Any]], out_dir: str | Path, *, meta: dict[str, Any] | None = None,
               scheduler: str | None = None, client=None, workers: int | None = None, cheap: bool = False,
               batch_size: int | None = None, max_attempts: int = 2,
               progress: Callable[[int, int], None] | None = None) -> PointsOutcome:
    """Run fn ("module:function", importable on the workers) on every point of `points` (id -> kwargs).

    out_dir: where <id>.json goes (meta[id] is stored beside the result); client: an open dask Client to
    use (else one is opened from scheduler / workers and closed at the end); cheap: points of well under a
    second, batched (batch_size overrides the engine's choice); progress(done, total) counts points.
    """
    from dask.distributed import as_completed

    try:
        from distributed import KilledWorker
    except ImportError:  # older layouts
        from distributed.scheduler import KilledWorker

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcome = PointsOutcome()
    todo = {}
    as_stored = {pid: _as_json(args) for pid, args in points.items()}
    for pid, args in points.items():
        stored = read_point(out / f"{pid}.json")
        if stored is not None and stored.get("args", as_stored[pid]) == as_stored[pid]:
            outcome.results[pid] = stored
        else:  # not finished, or finished with other arguments (a re-run into the folder with other settings)
            todo[pid] = args
    outcome.skipped = len(outcome.results)
    total = len(points)

    def _report() -> None:  # finished or given up, out of all
        if progress is not None:
            progress(len(outcome.results) + len(outcome.failed), total)

    if outcome.skipped:
        _report()
    if not todo:
        outcome.wall_s = time.perf_counter() - started
        return outcome
    own = client is None
    cluster = None
    if own:
        client, cluster = open_client(scheduler, workers)
    try:
        outcome.workers = len(client.scheduler_info()["workers"]) or 1
        size = batch_size or _batch_size(len(todo), outcome.workers, cheap)
        outcome.batch_size = size
        ids = list(todo)
        batches = [ids[i:i + size] for i in range(0, len(ids), size)]
        attempts = dict.fromkeys(ids, 0)

        def submit(batch: list[str]):
            for pid in batch:
                attempts[pid] += 1
            fut = client.submit(run_batch, fn, [(pid, todo[pid]) for pid in batch], pure=False,
                                key=f"sweep-point-{batch[0]}-{uuid.uuid4().hex[:8]}")
            owner[fut.key] = batch
            return fut

        owner: dict[str, list[str]] = {}
        pending = as_completed([submit(b) for b in batches])
        for fut in pending:
            batch = owner.pop(fut.key)
            try:
                records = fut.result()
            except KilledWorker as exc:
                if len(batch) > 1:  # find the point that kills workers: the others then finish alone
                    for pid in batch:
                        attempts[pid] -= 1
                        pending.add(submit([pid]))
                else:
                    outcome.failed[batch[0]] = f"its worker died every time it ran it ({exc})"
                    _report()
                continue
            except Exception as exc:  # the batch itself could not run (e.g. fn not importable on the worker)
                records = [{"id": pid, "error": f"{type(exc).__name__}: {exc}"} for pid in batch]
            finally:
                fut.release()
            for rec in records:
                pid = rec["id"]
                if "error" in rec:
                    if attempts[pid] < max_attempts:
                        pending.add(submit([pid]))
                    else:
                        outcome.failed[pid] = rec["error"]
                        _report()
                    continue
                rec["meta"], rec["args"] = (meta or {}).get(pid), as_stored[pid]
                _write_json(out / f"{pid}.json", rec)
                outcome.results[pid] = rec
                outcome.ran += 1
                _report()
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    outcome.wall_s = time.perf_counter() - started
    return outcome
