"""The `sagin-hil` command: run flowgraphs, benchmarks, and each layer's own tools."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from sagin_hil import __version__
from sagin_hil.registry import Registry, RegistryError

app = typer.Typer(
    name="sagin-hil",
    help="Hardware-in-the-loop SDR link emulator for space-air-ground (LEO -> UAV -> ground) image links.\n\n"
    "Start with `sagin-hil run`: a software loopback of a LEO pass carrying images at sample level.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
# Wide when writing to a file or a CI log, so tables are not squeezed into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

# Each layer adds its commands through `register(app)`; those modules import only typer at load time.
_LAYER_COMMANDS = (
    "sagin_hil.phy.cli",
    "sagin_hil.hil.emulator_cli",
    "sagin_hil.hil.radio_cli",
    "sagin_hil.codecs.cli",
    "sagin_hil.codecs.generative.cli",
    "sagin_hil.controllers.cli",
    "sagin_hil.calibration.cli",
    "sagin_hil.controllers.rl.cli",
    "sagin_hil.controllers.spiff.cli",
    "sagin_hil.flowgraphs.reproduce_cli",
    "sagin_hil.flowgraphs.sweep_cli",
)

# Benchmark name -> "module:function"; each function takes quick: bool and returns the bench dict.
BENCHMARKS = Registry("benchmark", {
    "ldpc": "sagin_hil.phy.bench:bench_ldpc",
    "rx": "sagin_hil.phy.rx_bench:bench_rx",
    "emulator": "sagin_hil.hil.pace_bench:bench_emulator",
    "channel": "sagin_hil.phy.channel.bench:bench_channel",
    "codec": "sagin_hil.flowgraphs.codec_bench:bench_codec",
    "controller": "sagin_hil.controllers.bench:bench_controller",
    "world": "sagin_hil.flowgraphs.world_bench:bench_world",
    "sweep": "sagin_hil.flowgraphs.sweep_bench:bench_sweep",
})


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sagin-hil {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print the sagin-hil version and exit (`sagin-hil version` also lists the libraries).",
    ),
) -> None:
    # The app-level options; the commands are registered below and by each layer's register(app).
    pass


@app.command()
def version() -> None:
    """Print the sagin-hil version and the versions of the libraries it runs on."""
    import numpy

    console.print(f"sagin-hil {__version__}")
    console.print(f"numpy {numpy.__version__}")
    for name in ("numba", "scipy", "torch", "zmq", "glymur"):
        try:
            mod = importlib.import_module(name)
            console.print(f"{name} {getattr(mod, '__version__', '?')}")
        except ImportError:
            console.print(f"{name} [yellow]not installed[/]")


@app.command()
def run(
    flowgraph: Optional[Path] = typer.Argument(
        None, help="Flowgraph TOML file. Without one, runs the embedded default (a LEO pass in loopback)."
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write summary.json to this path."),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="Folder that receives runs/<name>-<time>-<id>/."),
    images: Optional[int] = typer.Option(None, help="Override the number of images carried."),
    radio: Optional[str] = typer.Option(None, help="Override the radio: emulated, pluto-emu, pluto, soapy, zmq."),
    seed: Optional[int] = typer.Option(None, help="Override the flowgraph's seed (the same seed gives the same run)."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Set any flowgraph key, e.g. --set controller.algo=ao --set tasks.frames=2 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    record: Optional[Path] = typer.Option(
        None, "--record", help="Write every hop's received samples as SigMF to this folder (one recording per hop; "
        "replay them with --radio replay --set radio.uri=FOLDER, fit them with `calibrate channel`)."),
) -> None:
    """Run a flowgraph end to end and write a report folder (summary.json, tasks.csv, plots, index.html)."""
    from sagin_hil.flowgraphs.config import FlowgraphError, load_flowgraph
    from sagin_hil.flowgraphs.runner import run_flowgraph
    from sagin_hil.hil.radio import RadioError
    from sagin_hil.phy.channel.scenario import ScenarioError

    try:
        fg = load_flowgraph(flowgraph)
        overrides = {k: v for k, v in {"images": images, "radio": radio, "seed": seed, "sets": set_}.items() if v}
        if overrides or seed is not None:
            fg = fg.with_overrides(**{**overrides, "seed": seed})
        result = run_flowgraph(fg, out_dir=out_dir, console=None if quiet else console, record_dir=record)
    except (FlowgraphError, ScenarioError, RadioError) as exc:  # nothing was run: say why
        err_console.print(f"[red]error:[/] {escape(str(exc))}")  # messages quote keys like [controller]
        raise typer.Exit(2) from None
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        from sagin_hil.flowgraphs.report import clean_json

        json_path.write_text(json.dumps(clean_json(result.summary), indent=2))
        console.print(escape(f"summary written to {json_path}"))
    if result.aborted:
        err_console.print(f"[red]run aborted:[/] {escape(f'{result.aborted}; the finished tasks are in {result.out_dir}')}")
        raise typer.Exit(1)


@app.command()
def bench(
    name: str = typer.Argument(..., help=f"Benchmark: {', '.join(BENCHMARKS)} or all."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results (common bench schema) here."),
    quick: bool = typer.Option(False, help="Fewer repetitions: a smoke run, not a measurement."),
    codec_weights: Optional[Path] = typer.Option(
        None, "--codec-weights", help="bench codec only: score the deep JSCC weights in this folder (a `train jscc "
        "--out` folder) instead of the package's, on the same images and channel draws, to compare a candidate."),
) -> None:
    """Measure ours against a peer in the same run; ratios are ours' speed over the peer's."""
    from sagin_hil.benchmarks import merge_results, print_results, progress_reporter, validate_results
    from sagin_hil.progress import progress_bar

    names = list(BENCHMARKS) if name == "all" else [name]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        choices = ", ".join(BENCHMARKS)
        err_console.print(f"[red]error:[/] {escape(f'unknown benchmark {unknown[0]!r}; choose one of: {choices}, all')}")
        raise typer.Exit(2)
    if codec_weights is not None and names != ["codec"]:
        err_console.print(f"[red]error:[/] {escape(f'--codec-weights applies to bench codec only, not {name!r}')}")
        raise typer.Exit(2)
    if codec_weights is not None and not any(codec_weights.glob("jscc-*.safetensors")):
        msg = f"--codec-weights {codec_weights}: no jscc-*.safetensors there; give the --out folder of `sagin-hil train jscc`"
        err_console.print(f"[red]error:[/] {escape(msg)}")
        raise typer.Exit(2)
    results = []
    for n in names:
        try:
            fn = BENCHMARKS.get(n)
        except RegistryError as exc:
            err_console.print(f"[red]error:[/] {escape(f'benchmark {n!r} is not available: {exc}')}")
            raise typer.Exit(2) from None
        # one transient bar per benchmark, closed before its table prints so stdout and the bar never mix
        with progress_bar() as bar:
            task = bar.add_task(escape(f"bench {n}"), total=None)

            def report(step: str, done: int, total: int, task=task, n=n) -> None:
                bar.update(task, description=escape(f"bench {n}: {step}"), completed=done, total=total)

            with progress_reporter(report):
                kw = {"jscc_weights_dir": codec_weights} if codec_weights is not None else {}
                res = validate_results(fn(quick=quick, **kw))
        print_results(res, console)
        results.append(res)
    merged = merge_results(results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(merged, indent=2))
        console.print(escape(f"results written to {json_path}"))


for _module in _LAYER_COMMANDS:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
