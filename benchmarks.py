"""The common benchmark schema shared by every `sagin-hil bench NAME`.

A result is {"benchmarks": [{"name", "ours": {figures}, "peers": {peer: {figures}},
"ratio": {peer: ours' speed / peer's speed}}], ...} and may carry other keys (e.g. "curves").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["benchmark_entry", "validate_results", "merge_results", "print_results", "best_time_s",
           "report_progress", "progress_reporter"]

# Where report_progress goes: set by `sagin-hil bench` around each bench function, None elsewhere, so the
# bench functions need no progress argument in their `fn(quick)` signature.
_REPORTER: ContextVar[Callable[[str, int, int], None] | None] = ContextVar("bench_progress", default=None)


def report_progress(step: str, done: int, total: int) -> None:
    """A bench function says what it is measuring now and how far it is (`done` of `total` steps); shown
    by `sagin-hil bench`'s progress bar, a no-op when the function is called from anywhere else."""
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(step, done, total)


@contextmanager
def progress_reporter(callback: Callable[[str, int, int], None]) -> Iterator[None]:
    """Send the report_progress calls made inside the block to callback(step, done, total)."""
    token = _REPORTER.set(callback)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def benchmark_entry(
    name: str, ours: dict[str, Any], peers: dict[str, dict[str, Any]], ratio: dict[str, float], **extra: Any
) -> dict[str, Any]:
    """One benchmark in the common schema; `extra` keys (notes, settings) are kept beside the four."""
    return {"name": name, "ours": ours, "peers": peers, "ratio": ratio, **extra}


def best_time_s(fn: Callable[[], Any], repeats: int = 3, min_time_s: float = 0.0) -> float:
    """Best wall time of `repeats` calls (after one warm-up), each call repeated until min_time_s."""
    fn()
    best = math.inf
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time_s:
                break
        best = min(best, elapsed / n)
    return best


def validate_results(res: dict[str, Any]) -> dict[str, Any]:
    """Check a benchmark function's output against the schema; raise ValueError naming what is wrong."""
    if not isinstance(res, dict) or not isinstance(res.get("benchmarks"), list):
        raise ValueError("a benchmark must return {'benchmarks': [...]}")
    for b in res["benchmarks"]:
        missing = {"name", "ours", "peers", "ratio"} - set(b)
        if missing:
            raise ValueError(f"benchmark {b.get('name', '?')!r} lacks {sorted(missing)}")
        for peer in b["ratio"]:
            if peer not in b["peers"]:
                raise ValueError(f"benchmark {b['name']!r} has a ratio for {peer!r} but no such peer")
    return res


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate the benchmark lists; other keys (lists) are concatenated, scalars kept from the first."""
    merged: dict[str, Any] = {"benchmarks": []}
    for res in results:
        for key, value in res.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged.setdefault(key, value)
    return merged


def _fmt(figures: dict[str, Any]) -> str:
    parts = []
    for k, v in figures.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, (int, str, bool)):
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def print_results(res: dict[str, Any], console: Console) -> None:
    table = Table(title="benchmarks", show_lines=True)
    for col in ("name", "ours", "peers", "ratio (ours/peer speed)"):
        table.add_column(col)
    for b in res["benchmarks"]:
        peers = "\n".join(f"{p}: {_fmt(f)}" for p, f in b["peers"].items()) or "-"
        ratio = "\n".join(f"{p}: {r:.3g}" if isinstance(r, (int, float)) else f"{p}: {r}" for p, r in b["ratio"].items())
        # cells are rich markup: a skipped peer's install hint or a setting like "[0, 1]" must print as is
        table.add_row(*(escape(cell) for cell in (b["name"], _fmt(b["ours"]), peers, ratio or "-")))
    console.print(table)
