"""Progress bars of the long `sagin-hil` commands (calibrate bler, bench, controller ao-sweep).

The bar draws on stderr, so a piped stdout (tables, JSON paths) stays clean, and it is transient: nothing
is left behind once the work is done. Rich draws nothing when stderr is not a terminal (CI logs, pipes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar", "advance_callback", "StageClock"]


class StageClock:
    """Wall seconds per named stage, summed over every `with clock("stage"):` (where a run's time goes)."""

    def __init__(self) -> None:
        self.wall_s: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def add(self, stage: str, seconds: float) -> None:
        self.wall_s[stage] = self.wall_s.get(stage, 0.0) + seconds

    def merge(self, other: StageClock) -> None:
        for stage, seconds in other.wall_s.items():
            self.add(stage, seconds)


def progress_bar(console: Console | None = None, disable: bool = False) -> Progress:
    """A rich Progress: spinner, description, bar, done/total, elapsed and remaining time.

    Descriptions are rich markup: pass user text through rich.markup.escape. stdout is not redirected
    into the bar's console, so results printed to stdout meanwhile still go to stdout.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=True,
        disable=disable,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def advance_callback(progress: Progress, task_id) -> Callable[[int, int], None]:
    """A `callback(done, total)` for the library functions that report progress (measure_bler_table,
    run_sweeps), moving `task_id` of `progress`."""

    def callback(done: int, total: int) -> None:
        progress.update(task_id, completed=done, total=total)

    return callback
