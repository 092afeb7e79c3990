"""`sagin-hil train spiff` (docs/spiff.md): measure SPIFF's outcome table, train its engine and the NCB baseline
over seeds, and re-measure the spiff mode's row of the mode table."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def train_spiff(
    steps: int = typer.Option(20000, help="Bandit steps (images) per engine and seed."),
    seeds: int = typer.Option(8, help="Training seeds per engine (evaluation reports their spread)."),
    out: Path = typer.Option(Path("runs/train-spiff"), help="Checkpoints and learning curves; a re-run resumes."),
    outcomes: Path = typer.Option(None, help="Outcome table JSON (default: the shipped one, measured if missing; "
                                  "a re-run resumes measuring it)."),
    remeasure: bool = typer.Option(False, help="Measure the outcome table again from scratch."),
    measure: bool = typer.Option(True, help="Measure the images the outcome table lacks (--no-measure: train on it as is)."),
    workers: int = typer.Option(2, help="Processes measuring the outcome table and training the seeds."),
    threads: int = typer.Option(1, help="torch threads for training."),
    ship: bool = typer.Option(False, help="Write the actors over the package's shipped weights (default: into --out, "
                              "for `reproduce paper-003 --actors OUT`)."),
    mode_row: bool = typer.Option(True, help="Re-measure the spiff row of the mode table (bits, quality, compute time)."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto (CUDA when present); these MLPs are small."),
    held_out: str = typer.Option("grace_hopper", "--hold-out", help="The person photograph kept out of training "
                                 "(astronaut, camera or grace_hopper, the project's split): the other folds of a "
                                 "leave-one-subject-out evaluation (docs/spiff.md)."),
    alpha: float = typer.Option(0.1, help="SPIFF's risk level: the fidelity quantile held to the targets (delay: "
                                "1 - alpha); 0.5 is the median. Lower keeps more, saves less (docs/spiff.md)."),
) -> None:
    """Measure SPIFF's per-image outcomes (train + held-out person images x beta x p(0) x sampling seeds), train
    the quantile actor-multi-critic engine and the NCB baseline on them for several seeds (resumable), and
    re-measure the spiff mode's row. About 16 minutes on 2 idle cores with the shipped outcome table."""
    import torch

    from sagin_hil.controllers.spiff.engine import EngineConfig
    from sagin_hil.controllers.spiff.outcomes import DEFAULT_HELD_OUT, OUTCOMES_PATH, build_outcomes, hold_out, load_outcomes
    from sagin_hil.controllers.spiff.train import train_all
    from sagin_hil.progress import progress_bar

    for name, v in (("steps", steps), ("seeds", seeds), ("workers", workers), ("threads", threads)):
        if v < 1:
            raise typer.BadParameter(f"--{name} = {v}; use 1 or more")
    try:
        EngineConfig(alpha=alpha)  # checked before the outcome table, which can take minutes
    except ValueError as exc:
        raise typer.BadParameter(f"--{exc}") from None
    if ship and held_out != DEFAULT_HELD_OUT:
        raise typer.BadParameter(f"--hold-out {held_out} with --ship: the shipped actors hold out {DEFAULT_HELD_OUT}; "
                                 "train this fold into --out and evaluate it with `reproduce paper-003 --actors`")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    path = outcomes or OUTCOMES_PATH
    if remeasure and path.exists():
        path.unlink()
    with progress_bar() as bar:
        tid = bar.add_task("outcome table", total=None)
        table = build_outcomes(path, workers=workers, progress=lambda i, n, tag: bar.update(
            tid, completed=i, total=n, description=f"outcomes {tag}")) if measure else load_outcomes(path)
        bar.remove_task(tid)
        try:
            table = hold_out(table, held_out)
        except ValueError as exc:
            typer.secho(f"error: --hold-out: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        tid = bar.add_task(f"engines: {2 * seeds} runs of {steps} steps", total=2 * seeds)
        try:
            summary = train_all(table, out, steps, seeds, device=device, ship=ship, workers=workers, threads=threads,
                                progress=lambda kind, seed, _: bar.advance(tid), alpha=alpha)
        except ValueError as exc:  # e.g. resuming checkpoints trained at another alpha
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
    n = {s: len(v) for s, v in table["images"].items()}
    typer.echo(f"outcome table: {n['train']} train / {n['eval']} held-out ({held_out}) images ({len(table['skipped'])} "
               f"without a person share in range) -> {path}")
    for key, curve in sorted(summary["curves"].items()):
        probe = summary["probe"][key]
        trend = f"{curve[0]:.3f} -> {curve[-1]:.3f}" if curve else "- (under 250 steps)"
        trend += f", noise-free {probe[0]:.3f} -> {probe[-1]:.3f}" if probe else ""
        typer.echo(f"{key}: realised cost {trend} over {steps} steps ({summary['wall_s'][key]:.0f} s)")
    if mode_row:
        from sagin_hil.codecs.generative.spiff_table import write_mode_row

        row = write_mode_row()
        typer.echo(f"mode table spiff row: {row['bits']} bits, {row['psnr_db']:.2f} dB, {row['compute_time_s']:.3f} s")


def register(app: typer.Typer) -> None:
    """Join `train spiff` to the `train` group."""
    train = next((g.typer_instance for g in app.registered_groups if g.name == "train"), None)
    if train is None:
        train = typer.Typer(help="Train the project's models.", no_args_is_help=True)
        app.add_typer(train, name="train")
    train.command("spiff")(train_spiff)
