"""Command-line commands of this layer, registered on the `sagin-hil` app (heavy imports stay inside commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

controller_app = typer.Typer(help="The control plane and the controllers (docs/controllers.md, docs/protocol.md).",
                             no_args_is_help=True)


def _parse_options(options: list[str]) -> dict:
    out = {}
    for item in options:
        if "=" not in item:
            raise typer.BadParameter(f"option {item!r} must look like key=value (value parsed as JSON if it can be)")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@controller_app.command("serve")
def serve(
    algo: str = typer.Option("link-adaptation", "--algo", help="Controller name (see `controller list`)."),
    endpoint: str = typer.Option("tcp://127.0.0.1:5560", help="ROUTER endpoint to bind (tcp://host:0 = any port)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Controller option key=value (repeat)."),
) -> None:
    """Serve a controller over ZeroMQ until interrupted (Ctrl-C or SIGTERM)."""
    import signal
    import time

    from sagin_hil.controllers import get_controller
    from sagin_hil.controllers.plane import ControlServer

    try:
        ctl = get_controller(algo, **_parse_options(option or []))
    except (ValueError, ImportError, TypeError) as exc:
        typer.echo(f"error: cannot build controller {algo!r}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        srv = ControlServer(ctl, endpoint=endpoint).start()
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"controller {algo!r} serving on {srv.endpoint} (updates on {srv.pub_endpoint}); Ctrl-C stops")

    def _on_term(signum, frame):  # a supervisor's SIGTERM stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        typer.echo(f"stopped; stats {json.dumps(srv.stats)}")


@controller_app.command("list")
def list_controllers() -> None:
    """List the registered controllers with their options (set them in a flowgraph's [controller.options])."""
    from sagin_hil.controllers import available_controllers, controller_options

    for name in available_controllers():
        model = controller_options(name)
        typer.echo(name)
        for key, f in model.model_fields.items():
            typer.echo(f"    {key} = {f.default!r}  {f.description or ''}")


@controller_app.command("ao-sweep")
def ao_sweep(
    out: Path = typer.Option(Path("ao-sweep"), "--out", help="Folder for the plots (png) and sweep.json."),
    seeds: int = typer.Option(3, min=1, help="User layouts averaged per point."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="tcp://HOST:PORT of a running `dask scheduler`; default: a local cluster."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Local cluster: worker processes (default: one per CPU core)."),
) -> None:
    """Sum rate vs UAV bandwidth and UAV power: proposed AO against the three baselines (paper 001 Fig. 5).
    Runs on the sweep engine (docs/sweeps.md); AO runs already in OUT/points are not run again."""
    from sagin_hil.controllers.sweep import run_sweeps
    from sagin_hil.sweep_engine import SweepError
    from sagin_hil.progress import advance_callback, progress_bar

    try:
        with progress_bar() as bar:
            task = bar.add_task("AO runs (sweeps x seeds x points x schemes)", total=None)
            res = run_sweeps(out, n_seeds=seeds, progress=advance_callback(bar, task), scheduler=scheduler,
                             workers=workers)
    except SweepError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, sweep in res.items():
        typer.echo(f"{name}: proposed >= every baseline at every point: {sweep['ordering_holds']}")
    typer.echo(f"plots and sweep.json written to {out}")


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`."""
    app.add_typer(controller_app, name="controller")
