"""`sagin-hil train dsac | mappo` (docs/rl.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def _train(algo: str, minutes: float, seeds: int, n_envs: int, out: Path, ship: bool, device: str,
           mode1: str = "mode1", image_pixels: int | None = None, uav_offset_m: float = 0.0,
           snr_shaping: float = 0.0, move_cost: float | None = None) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sagin_hil.controllers.rl.train import shipped_weights, train_seeds
    from sagin_hil.controllers.abstraction import world_knobs

    try:
        knobs = world_knobs(mode1, image_pixels, uav_offset_m)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if knobs and ship:
        raise typer.BadParameter("the shipped policies are the default world's: train this world without --ship "
                                 "and give its weights to `reproduce paper-000 --dsac/--mappo`")
    if move_cost is not None and algo != "dsac":
        raise typer.BadParameter(f"--move-cost {move_cost} is DSAC's waypoint price; MAPPO's moves are free")
    if move_cost is not None and not move_cost >= 0:
        raise typer.BadParameter(f"--move-cost {move_cost} must be >= 0 (SCC per v_max x slot of move)")
    if not snr_shaping >= 0:
        raise typer.BadParameter(f"--snr-shaping {snr_shaping} must be >= 0 (SCC per dB; 0: no shaping)")
    reward = {**({"snr_shaping_per_db": snr_shaping} if snr_shaping else {}),
              **({"move_cost": move_cost} if move_cost is not None else {})}
    if reward and ship:
        raise typer.BadParameter("the shipped policies are trained with the default reward: train without --ship "
                                 "and give the weights to `reproduce paper-000 --dsac/--mappo`")

    ship_to = shipped_weights(algo) if ship else out / f"{algo}.safetensors"
    typer.echo(f"training {algo}: {seeds} seeds x {minutes / seeds:.1f} min on {n_envs} environments in {out}")
    if knobs or reward:
        typer.echo("world: " + (", ".join(f"{k} = {v}" for k, v in knobs.items()) or "default")
                   + "; reward: " + (", ".join(f"{k} = {v}" for k, v in reward.items()) or "default"))
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("running SCC/task {task.fields[scc]}"), transient=True) as bar:
        tid = bar.add_task(f"{algo} seed 0", total=1.0, scc="-")

        def cb(seed: int, frac: float, scc: float, steps: float) -> None:
            bar.update(tid, completed=frac, description=f"{algo} seed {seed} ({int(steps)} steps)",
                       scc="-" if scc != scc else f"{scc:.3f}")

        summary = train_seeds(algo, out, minutes, seeds=seeds, n_envs=n_envs, device=device, ship_to=ship_to,
                              progress=cb, **({"world_kwargs": knobs} if knobs else {}), **reward)
    for s, r in summary["seeds"].items():
        final = r["final_scc_per_task"]
        typer.echo(f"seed {s}: {r['env_steps']} env steps in {r['wall_s']:.0f} s, final training SCC/task "
                   + ("- (no episode finished: give it more --minutes)" if final is None else f"{final:.3f}"))
    typer.echo(f"policy (seed {summary['shipped_seed']}) -> {ship_to}; curves -> {out / (algo + '-curves.png')}")


def _train_command(algo: str):
    def cmd(
        minutes: float = typer.Option(18.0, help="Wall-time budget in minutes, shared by the seeds."),
        seeds: int = typer.Option(3, help="Seeds to train (learning curves show their mean and spread)."),
        envs: int = typer.Option(16, help="Environments stepped in parallel (SaginVecEnv)."),
        out: Path = typer.Option(Path(f"runs/train-{algo}"), help="Checkpoints, curves and per-seed policies; "
                                 "re-running resumes from the checkpoints there."),
        ship: bool = typer.Option(False, help="Write the kept policy over the package's shipped weights."),
        device: str = typer.Option("auto", help="cpu, cuda or auto (CUDA when present)."),
        mode1: str = typer.Option("mode1", help="The world's Mode 1: mode1 (rate-adaptive JPEG 2000) or "
                                  "mode1-lossless (docs/reproductions.md)."),
        image_pixels: Optional[int] = typer.Option(None, help="Pixels of every task image (default 512 x 512; "
                                                   "the paper's 3.5 MB images: 1166667)."),
        uav_offset_m: float = typer.Option(0.0, help="Deploy every UAV this far from its users' area each episode."),
        snr_shaping: float = typer.Option(0.0, help="Shape the waypoint reward with a potential of this many SCC "
                                          "per dB of each UAV's mean SNR to its users (0.2 in docs/rl.md; 0: none)."),
        move_cost: Optional[float] = typer.Option(None, help="DSAC only: the waypoint head's price per v_max x "
                                                  "slot of move (default 0.077, the sample-level flight wait)."),
    ) -> None:
        _train(algo, minutes, seeds, envs, out, ship, device, mode1, image_pixels, uav_offset_m, snr_shaping,
               move_cost)

    cmd.__doc__ = (f"Train {algo.upper()} on the vectorised SAGIN environment for a wall-time budget "
                   "(resumable), plot its learning curves over seeds and keep one policy as safetensors.")
    return cmd


def register(app: typer.Typer) -> None:
    """Join `train dsac | mappo` to the `train` group (registered by the codecs first)."""
    train = next((g.typer_instance for g in app.registered_groups if g.name == "train"), None)
    if train is None:
        train = typer.Typer(help="Train the project's models.", no_args_is_help=True)
        app.add_typer(train, name="train")
    for algo in ("dsac", "mappo"):
        train.command(algo)(_train_command(algo))
