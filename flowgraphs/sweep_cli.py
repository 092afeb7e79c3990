"""`sagin-hil sweep` and `sagin-hil compare` (docs/sweeps.md); heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _console():
    from sagin_hil.cli import console, err_console

    return console, err_console


def _table(title: str, header: list[str], rows: list[list[str]]):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for col in header:
        table.add_column(escape(col))
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def sweep(
    flowgraph: Path = typer.Argument(..., help="Flowgraph TOML file, or the name of a shipped one (e.g. sagin-000)."),
    grid: Optional[list[str]] = typer.Option(
        None, "--grid", help="A swept key and its values, key=v1,v2,... (repeatable; points = every combination)."),
    seeds: int = typer.Option(1, "--seeds", help="Seeds per grid point: the flowgraph's seed, seed + 1, ..."),
    fidelity: str = typer.Option("sample", "--fidelity", help="sample (the runner) or abstraction (the link "
                                 "abstraction: a fraction of a second per point)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="A key set at every point, key=value (repeatable)."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="tcp://HOST:PORT of a running `dask scheduler`; default: a local cluster."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Local cluster: worker processes (default: one per CPU core)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep folder (default runs/sweep-<name>-<fidelity>); "
                                       "points already in it are not run again."),
) -> None:
    """Run a flowgraph over a grid of settings x seeds on Dask; summary table, plots and JSON in the folder."""
    from rich.markup import escape

    from sagin_hil.flowgraphs.config import FlowgraphError, load_flowgraph
    from sagin_hil.flowgraphs.sweep import parse_grid, run_sweep
    from sagin_hil.sweep_engine import SweepError
    from sagin_hil.flowgraphs.sweep_report import summary_table_rows
    from sagin_hil.phy.channel.scenario import ScenarioError
    from sagin_hil.progress import advance_callback, progress_bar

    console, err_console = _console()
    try:
        fg = load_flowgraph(flowgraph)
        folder = out or Path("runs") / f"sweep-{fg.name}-{fidelity}"
        with progress_bar() as bar:
            task = bar.add_task(escape(f"sweep {fg.name} ({fidelity}): points"), total=None)
            summary = run_sweep(fg, parse_grid(grid or []), seeds, folder, fidelity=fidelity, sets=set_,
                                scheduler=scheduler, workers=workers, progress=advance_callback(bar, task))
    except (FlowgraphError, ScenarioError, SweepError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    header, rows = summary_table_rows(summary)
    console.print(_table(f"sweep {fg.name}: mean ± 95 % interval over seeds", header, rows))
    eng = summary["engine"]
    console.print(escape(f"{summary['finished']} of {len(summary['points'])} points ({eng['skipped']} found done, "
                         f"{eng['ran']} run on {eng['workers']} workers, {eng['batch_size']} per task) in "
                         f"{eng['wall_s']:.1f} s; summary.json, summary.md and plots/ in {folder}"))
    if summary["failed"]:
        for f in summary["failed"].values():
            err_console.print(escape(f"failed: {f['params']} seed {f['seed']}: {f['error']}  (alone: {f['reproduce']})"))
        err_console.print(escape(f"{len(summary['failed'])} point(s) failed; a re-run tries only those"))
        raise typer.Exit(1)


def compare(
    paths: list[Path] = typer.Argument(..., help="Run folders (summary.json) and sweep folders, two or more."),
    out: Path = typer.Option(Path("runs/compare"), "--out", help="Folder for compare.json, compare.md and plots."),
) -> None:
    """Runs and sweeps side by side: tasks met, SCC, PSNR and delay per controller and per mode, with plots."""
    from rich.markup import escape

    from sagin_hil.flowgraphs.compare import CompareError, compare_paths, table_rows

    console, err_console = _console()
    try:
        result = compare_paths(paths, out)
    except CompareError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for part, title in (("controllers", "per controller"), ("modes", "per mode")):
        header, rows = table_rows(result, part)
        if rows:
            console.print(_table(f"compare {title} (sweeps: mean ± 95 % interval over their points)", header, rows))
    console.print(escape(f"compare.json, compare.md and plots/ in {out}"))


def register(app: typer.Typer) -> None:
    """Add `sweep` and `compare` to `app`."""
    app.command("sweep")(sweep)
    app.command("compare")(compare)
