"""`sagin-hil reproduce paper-000` (docs/reproductions.md; the work is in flowgraphs/reproduce.py) and
`reproduce paper-002` (docs/jcrra.md; flowgraphs/reproduce_002.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

reproduce_app = typer.Typer(help="Regenerate a paper's figures from the environment and the trained policies.",
                            no_args_is_help=True)


@reproduce_app.command("paper-000")
def reproduce_000(
    out: Path = typer.Option(..., "--out", help="Folder for paper-000.json and the figures."),
    quick: bool = typer.Option(False, help="Fewer points and seeds (a few minutes)."),
    seeds: Optional[int] = typer.Option(None, help="Held-out seeds per point (default 20; quick 4)."),
    sample_level: bool = typer.Option(True, help="Re-run a few points at sample level (sagin-000)."),
    workers: Optional[int] = typer.Option(None, help="Local worker processes of the sweep engine (default: one per core)."),
    scheduler: Optional[str] = typer.Option(None, help="An existing Dask scheduler, tcp://HOST:PORT, instead."),
    mode1: str = typer.Option("mode1", help="The mode that plays the paper's Mode 1: mode1 (JPEG 2000 at the rate "
                              "the controller sets) or mode1-lossless (the whole image, as the paper describes it)."),
    image_pixels: Optional[int] = typer.Option(None, help="Pixels of every task image in the environment (default "
                                               "512 x 512; the paper's 3.5 MB images: 1166667). Skips the "
                                               "sample-level runs, which send the flowgraph's own images."),
    dsac: Optional[Path] = typer.Option(None, help="DSAC weights (.safetensors from `train dsac`) instead of the "
                                        "shipped ones."),
    mappo: Optional[Path] = typer.Option(None, help="MAPPO weights instead of the shipped ones."),
    uav_offset_m: float = typer.Option(0.0, help="Deploy every UAV this far from its users' area, in a direction "
                                       "drawn per episode (the paper deploys them at random around their areas)."),
) -> None:
    """Paper 000's comparisons (Fig. 6-10) from the environment with the trained policies, 95 % intervals
    over held-out seeds, plus a few points re-run at sample level."""
    from sagin_hil.flowgraphs.reproduce import reproduce_paper_000

    from sagin_hil.sweep_engine import SweepError

    try:
        res = reproduce_paper_000(out, quick=quick, seeds=seeds, sample_level_runs=sample_level, log=typer.echo,
                                  workers=workers, scheduler=scheduler, mode1=mode1, n_pixels=image_pixels,
                                  weights={k: str(v) for k, v in (("dsac", dsac), ("mappo", mappo)) if v},
                                  uav_offset_m=uav_offset_m)
    except (SweepError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for name, p in res["policies"].items():
        lo, hi = p["scc_ci95"]
        typer.echo(f"{name:>8}: SCC per task {p['scc_mean']:.3f} [{lo:.3f}, {hi:.3f}]")
    typer.echo(f"-> {out / 'paper-000.json'}")


@reproduce_app.command("paper-002")
def reproduce_002(
    out: Path = typer.Option(..., "--out", help="Folder for paper-002.json and paper-002.png."),
    quick: bool = typer.Option(False, help="Three points per sweep, 3 seeds (about a minute)."),
    seeds: Optional[int] = typer.Option(None, help="Seeds per point (default 10; quick 3)."),
) -> None:
    """[P002]: transmit power against the delay limit and the SSIM requirement for JCRRA, greedy JSCC and
    greedy JPEG on leo-eo-002's LEO pass, and JCRRA's gap to the exhaustive optimum on small instances."""
    from sagin_hil.flowgraphs.reproduce_002 import reproduce_paper_002

    try:
        res = reproduce_paper_002(out, quick=quick, seeds=seeds, log=typer.echo)
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for key, sw in res["sweeps"].items():
        typer.echo(f"{key}: x = {sw['x']}")
        for name, values in sw["power_dbw"].items():
            typer.echo(f"  {name:>12}: " + " ".join(f"{v:7.2f}" for v in values) + " dBW")
    gap = res["optimality_gap"]
    typer.echo(f"JCRRA vs exhaustive optimum: mean gap {100 * gap['mean']:.2f} %, max {100 * gap['max']:.2f} %")


@reproduce_app.command("paper-003")
def reproduce_003(
    out: Path = typer.Option(..., "--out", help="Folder for paper-003.json and paper-003.png."),
    quick: bool = typer.Option(False, help="Fewer network states per held-out image (seconds)."),
    states: Optional[int] = typer.Option(None, help="Network states per held-out image (default 40; quick 8)."),
    actors: Optional[Path] = typer.Option(None, help="Folder with spiff-actors / ncb-actors.safetensors from "
                                          "`train spiff --out` (default: the shipped ones)."),
    cross_subject: Optional[Path] = typer.Option(None, help="Folder of `train spiff --hold-out S --out DIR/S` runs: "
                                                 "pooled with the shipped actors (grace_hopper held out) into one "
                                                 "leave-one-subject-out Table IV."),
) -> None:
    """Paper 003's Table IV (SPIFF vs NCB, JPEG q45, caption-only under the strict / intermediate / lenient
    targets) on held-out person images and network states, from the shipped outcome table and actors."""
    from sagin_hil.controllers.spiff.outcomes import DEFAULT_HELD_OUT
    from sagin_hil.controllers.spiff.train import actors_metadata
    from sagin_hil.flowgraphs.reproduce_003 import reproduce_paper_003

    folds = None
    if cross_subject is not None:
        if actors is not None:
            raise typer.BadParameter("--actors with --cross-subject: the folds' actors are the folder's runs")
        dirs = sorted(p.parent for p in cross_subject.glob("*/spiff-actors.safetensors"))
        if not dirs:
            raise typer.BadParameter(f"no `train spiff --hold-out S --out {cross_subject}/S` run in {cross_subject} "
                                     "(expected <subject>/spiff-actors.safetensors)")
        own = any(actors_metadata(d / "spiff-actors.safetensors")["held_out"] == DEFAULT_HELD_OUT for d in dirs)
        folds = dirs if own else [None, *dirs]
    try:
        res = reproduce_paper_003(out, quick=quick, states=states, log=typer.echo, actors_dir=actors, folds=folds)
    except (FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for target, schemes in res["table4"].items():
        for name, r in schemes.items():
            typer.echo(f"{target:>12} {name:>9}: P(PF>=min) {r['p_pf']:.2f}  P(SF>=min) {r['p_sf']:.2f}  "
                       f"saving {100 * r['saving']:.1f} %")
        d = res["spiff_vs_ncb"][target]["saving"]
        typer.echo(f"{target:>12} spiff - ncb saving {100 * d['mean']:+.2f} pt "
                   f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] (paired, 95 %)")
    for subject, fold in res.get("folds", {}).items():
        typer.echo(f"held out {subject}: spiff - ncb saving " + ", ".join(
            f"{t} {100 * d['saving']['mean']:+.2f} pt" for t, d in fold["spiff_vs_ncb"].items()))
    typer.echo(f"-> {out / 'paper-003.json'}")


def register(app: typer.Typer) -> None:
    """Add `sagin-hil reproduce`."""
    app.add_typer(reproduce_app, name="reproduce")
