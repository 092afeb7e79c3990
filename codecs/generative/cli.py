"""`sagin-hil train generative`: the offline diffusion decoders of Modes 3_x, or fine-tuning on user weights.

--offline trains the small diffusion decoders on the shipped train images (resumable from --checkpoint-dir)
and measures them on the held-out images against the plain VQ decoder and JPEG 2000 at equal bits;
--weights-dir DIR --images FILES fine-tunes the latent VQ encoder and the UNet's conditioning of the
Stable Diffusion path (docs/codecs.md).
"""

import json
from pathlib import Path
from typing import List, Optional

import typer


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)


def _print_eval(res: dict) -> None:
    typer.echo(f"mode {res['mode']}: {res['bits']} bits ({res['bpp']:.4f} bpp), {res['n_images']} {res['split']} images")
    for name in [k for k in res if isinstance(res[k], dict)]:
        r = res[name]
        typer.echo(f"  {name:9s} PSNR {r['psnr_db']:6.2f} dB  SSIM {r['ssim']:.3f}  MS-SSIM {r['ms_ssim']:.4f}")


def train_generative_cmd(
    offline: bool = typer.Option(False, "--offline", help="Train the small diffusion decoders of Modes 3_x "
                                 "on the shipped images (no downloaded weights)."),
    modes: str = typer.Option("3_1,3_2,3_3", help="Comma-separated modes."),
    minutes: Optional[float] = typer.Option(None, help="Compute budget per mode in minutes: CPU seconds / "
                                            "--threads, wall time on CUDA (default: OFFLINE_MINUTES of "
                                            "train_offline.py, 30 min in all)."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    seed: int = typer.Option(0, help="Training seed (--offline); the shipped decoders are seed 0. Give each seed "
                             "its own --checkpoint-dir and --out."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Weights folder (default: the package's codecs/weights)."),
    checkpoint_dir: Path = typer.Option(Path("runs/train-generative"), help="Checkpoints; a re-run resumes from them."),
    evaluate: bool = typer.Option(True, help="Measure held-out quality (vs plain VQ and JPEG 2000) when done."),
    report: Optional[Path] = typer.Option(None, help="Write the held-out measurements as JSON here."),
    weights_dir: Optional[Path] = typer.Option(None, help="Folder with stable-diffusion/ (and blip/) to fine-tune on."),
    images: Optional[List[Path]] = typer.Option(None, help="Your images to fine-tune on (with --weights-dir)."),
    steps: int = typer.Option(200, help="Optimiser steps of the fine-tuning (with --weights-dir)."),
) -> None:
    """Train the generative Modes 3_x: --offline (shipped small decoders) or --weights-dir + --images."""
    from sagin_hil.codecs.base import CodecError

    names = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in names if m not in ("3_1", "3_2", "3_3")]
    if bad:
        typer.echo(f"error: unknown mode(s) {', '.join(bad)}; choose from 3_1, 3_2, 3_3", err=True)
        raise typer.Exit(2)
    if not offline and weights_dir is None:
        typer.echo("error: give --offline (train the shipped small decoders) or --weights-dir DIR --images FILE...", err=True)
        raise typer.Exit(2)
    results = []
    try:
        if offline:
            from sagin_hil.codecs.generative.train_offline import evaluate_gen, train_gen_decoder

            for mode in names:
                with _progress() as bar:
                    task = bar.add_task(f"gen-{mode}", total=1.0)
                    res = train_gen_decoder(mode, minutes, device=device, threads=threads, out_dir=out_dir, seed=seed,
                                            checkpoint_dir=checkpoint_dir, log=bar.console.print,
                                            progress=lambda done, total: bar.update(task, completed=done / total))
                typer.echo(f"gen-{mode}: {res['steps']} steps in {res['train_time_s']:.0f} s; saved {res['path']}")
                if evaluate:
                    results.append(evaluate_gen(mode, weights_dir=out_dir))
                    _print_eval(results[-1])
        else:
            from sagin_hil.codecs.generative.latent import finetune_latent_vq

            for mode in names:
                res = finetune_latent_vq(weights_dir, mode, images or [], steps=steps, device=device, threads=threads)
                typer.echo(f"latent VQ {mode}: {res['steps']} steps, final loss {res['final_loss']:.4f}; saved {res['path']}")
                results.append(res)
    except (CodecError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if offline and out_dir is None:
        from sagin_hil.codecs.modes import remeasure_hint

        typer.echo(remeasure_hint([f"mode{m}" for m in names]))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(results, indent=1))
        typer.echo(f"measurements written to {report}")


def register(app: typer.Typer) -> None:
    """Join `train generative` to the codecs' `train` group."""
    from sagin_hil.codecs.cli import train_app

    train_app.command("generative")(train_generative_cmd)
