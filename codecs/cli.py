"""Command-line commands of this layer, registered on the `sagin-hil` app (heavy imports stay inside commands).

`sagin-hil train jscc | vq | modes | eval`: train the project's codecs on the shipped images, measure the
mode table, and evaluate codecs on the held-out images.
"""

import math
from pathlib import Path
from typing import Optional

import typer

train_app = typer.Typer(help="Train the project's codecs (deep JSCC, VQ) and measure the mode table.", no_args_is_help=True)


@train_app.command("jscc")
def train_jscc_cmd(
    full: bool = typer.Option(False, "--full", help="The shipped training: one FiLM network per "
                              "ratio, side by side, 110 min, with --colour."),
    quick: bool = typer.Option(False, "--quick", help="8 min of the same training (checks the code path; writes "
                               "runs/jscc-quick/ unless --out)."),
    minutes: Optional[float] = typer.Option(None, help="Training-time budget in minutes (default 110 with --full, "
                                            "8 with --quick); with --arch film, the budget of each ratio's model."),
    ratios: str = typer.Option("1/12,1/6", help="Comma-separated bandwidth ratios k/n (multiples of 1/48)."),
    arch: str = typer.Option("film", help="film (the shipped one: residual blocks with FiLM on the SNR, one model "
                             "per ratio, checkpoints in CHECKPOINT_DIR/<ratio>) or adjscc (GDN + attention, one model "
                             "for all ratios)."),
    channels: int = typer.Option(64, help="Feature channels."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Weights folder (default: the package's codecs/weights)."),
    checkpoint_dir: Optional[Path] = typer.Option(None, help="Checkpoint and curve folder (default "
                                                  "runs/jscc-train, runs/jscc-quick with --quick)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing checkpoint and start over."),
    batch: int = typer.Option(16, help="Patches per step."),
    patch: int = typer.Option(64, help="Patch side in px."),
    eval_images: int = typer.Option(8, help="Held-out images of the final evaluation (the curve uses <= 3)."),
    colour: Optional[bool] = typer.Option(None, "--colour/--no-colour", help="Add two colour photographs to the "
                                          "train images and shuffle the RGB channels of half the patches (the train "
                                          "images hold almost no blue; docs/jscc-runs.md). Default: on with --full "
                                          "and --quick, off otherwise."),
) -> None:
    """Train deep JSCC models on patches of the shipped train images; write jscc-<ratio>.safetensors.

    Runs resume automatically from checkpoint.pt in CHECKPOINT_DIR (film: in CHECKPOINT_DIR/<ratio>/; written
    every 2 min and on Ctrl-C or SIGTERM, after which the run still writes its weights); the training curve
    (curve.*) lies beside it.
    """
    names = [r.strip() for r in ratios.split(",") if r.strip()]
    if full and quick:
        typer.echo("error: choose one of --full and --quick", err=True)
        raise typer.Exit(2)
    if arch not in ("adjscc", "film"):
        typer.echo(f"error: --arch {arch!r}: choose adjscc or film", err=True)
        raise typer.Exit(2)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sagin_hil.codecs.train import JSCC_FULL_MINUTES, JSCC_QUICK_MINUTES, train_jscc, train_jscc_jobs

    colour = (full or quick) if colour is None else colour  # the shipped recipe trains with it
    budget = minutes or (JSCC_QUICK_MINUTES if quick else JSCC_FULL_MINUTES)
    ckpt = checkpoint_dir or Path("runs/jscc-quick" if quick else "runs/jscc-train")
    out = out_dir or (Path("runs/jscc-quick") if quick else None)
    # adjscc: one network for every ratio; film: one network per ratio, each in a process and folder of its own
    groups = [tuple(names)] if arch == "adjscc" else [(r,) for r in names]
    jobs = [dict(ratios=g, minutes=budget, channels=channels, batch=batch, patch=patch, arch=arch, device=device,
                 threads=max(1, threads // len(groups)), out_dir=out,
                 checkpoint_dir=ckpt if arch == "adjscc" else ckpt / g[0].replace("/", "_"), resume=not fresh,
                 eval_every_s=60.0 if quick else 300.0, eval_images=eval_images,
                 split="train+colour" if colour else "train", permute_p=0.5 if colour else 0.0)
            for g in groups]
    try:
        with Progress(TextColumn("jscc {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), transient=True) as bar:
            tasks = [bar.add_task(f"{arch} {','.join(g)} ({budget:.0f} min)", total=1.0) for g in groups]
            if len(jobs) == 1:
                results = [train_jscc(**jobs[0], log=bar.console.print,
                                      progress=lambda f: bar.update(tasks[0], completed=f))]
            else:
                results = train_jscc_jobs(jobs, lambda i, line: bar.console.print(f"[{names[i]}] {line}"),
                                          lambda i, f: bar.update(tasks[i], completed=f))
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for g, res in zip(groups, results):
        typer.echo(f"jscc {arch} {','.join(g)}: {res['steps']} steps in {res['train_time_s'] / 60:.1f} min of training"
                   + (" (stopped early; run the same command again to continue)" if res["stopped_early"] else ""))
        for ratio, ev in res["eval_psnr_db"].items():
            typer.echo(f"  {ratio}: held-out PSNR by SNR " + ", ".join(f"{k} dB: {v:.2f}" for k, v in ev.items()))
        typer.echo("weights: " + ", ".join(res["paths"]) + "; curve: " + ", ".join(res["curve"]))
    from sagin_hil.codecs.modes import remeasure_hint

    # the package's weights changed: what was measured with the old ones is stale
    if out is None and (hint := remeasure_hint([f"jscc-{r}" for r in names])):
        typer.echo(hint)
    elif out is not None:
        typer.echo(f"compare with the shipped weights: sagin-hil bench codec --codec-weights {out}")


@train_app.command("vq")
def train_vq_cmd(
    minutes: float = typer.Option(24.0, help="Total wall-clock budget, split over the modes."),
    modes: str = typer.Option("3_1,3_2,3_3", help="Comma-separated modes."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Weights folder (default: the package's codecs/weights)."),
) -> None:
    """Train the VQ semantic codecs of Modes 3_1..3_3; write vq-<mode>.safetensors."""
    from sagin_hil.codecs.train import train_vq

    names = [m.strip() for m in modes.split(",") if m.strip()]
    for mode in names:
        typer.echo(f"training vq {mode} for {minutes / len(names):.1f} min on {threads} threads")
        res = train_vq(mode, minutes / len(names), device=device, threads=threads, out_dir=out_dir, log=typer.echo)
        typer.echo(f"vq {mode}: {res['steps']} steps in {res['train_time_s']:.0f} s; held-out PSNR "
                   f"{res['eval']['psnr_db']:.2f} dB at {res['eval']['bits']} bits; saved {res['path']}")
    if out_dir is None:  # as after train jscc
        from sagin_hil.codecs.modes import remeasure_hint

        typer.echo(remeasure_hint([f"mode{m}" for m in names]))


@train_app.command("eval")
def eval_cmd(
    codec: str = typer.Argument(..., help="Registry name, e.g. jpeg2000, jscc-1/12, vq-3_2."),
    images: int = typer.Option(8, help="Held-out images."),
    size: int = typer.Option(256, help="Image side in px."),
    budget_bits: Optional[int] = typer.Option(None, help="Bit budget (jpeg2000)."),
    snr_db: float = typer.Option(10.0, help="AWGN SNR for analog codecs (jscc)."),
    codec_weights: Optional[Path] = typer.Option(None, help="Folder with the codec's weights (jscc, vq), e.g. a "
                                                 "candidate from `train jscc --out` (default: the package's)."),
    perceptual: bool = typer.Option(False, help="Also LPIPS and CLIP image similarity (needs --weights-dir)."),
    weights_dir: Optional[Path] = typer.Option(None, help="Folder with user-supplied lpips/ and clip/ weights."),
    device: str = typer.Option("auto", help="Torch device of the perceptual metrics: auto (CUDA if present), cpu."),
) -> None:
    """PSNR, SSIM and MS-SSIM of a codec on the held-out images (with --perceptual also LPIPS and CLIP-I).

    CLIP-I is 100 * max(cos, 0) of the CLIP image embeddings of the original and the decoded image. "cast" is
    the decoded image's mean colour minus the original's, R/G/B levels (a colour cast costs PSNR everywhere).
    """
    import numpy as np

    from sagin_hil.codecs import CodecError, get_codec
    from sagin_hil.codecs.base import Budget
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.perceptual import MetricWeightsError, load_perceptual

    scorers = {}
    if perceptual:
        try:
            scorers = load_perceptual(weights_dir, device=device)
        except MetricWeightsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    try:
        c = get_codec(codec, **({"weights_dir": codec_weights} if codec_weights else {}))
    except (ValueError, CodecError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except TypeError:  # the codec takes no weights
        typer.echo(f"error: {codec} has no trained weights; drop --codec-weights", err=True)
        raise typer.Exit(2) from None
    import torch

    from sagin_hil.codecs.jscc import awgn_symbols

    gen = torch.Generator().manual_seed(0)
    rows: list[dict[str, float]] = []
    for name, img in load_images(images, size, "eval"):
        if c.kind == "analog":
            pay = c.encode(img, Budget(snr_db=snr_db))
            rx = awgn_symbols(pay.symbols, snr_db, gen)
            rec = c.decode(pay.data, symbols=rx, snr_db=snr_db)
        else:
            pay = c.encode(img, Budget(bits=budget_bits or size * size)) if codec == "jpeg2000" else c.encode(img)
            rec = c.decode(pay.data)
        row = _eval_row(img, rec, scorers)
        rows.append({"bits": pay.n_bits, "symbols": pay.n_symbols, **row})
        typer.echo(f"{name:22s} " + _format_eval_row(rows[-1]))
    if rows:
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        typer.echo(f"{'mean':22s} " + _format_eval_row(mean))


def _eval_row(img, rec, scorers: dict) -> dict[str, float]:
    """Metrics of one decoded image: PSNR, SSIM, MS-SSIM (NaN below its 161 px minimum), colour cast (R, G, B
    levels), LPIPS / CLIP-I if scored."""
    import numpy as np

    from sagin_hil.codecs.metrics import colour_offset, ms_ssim, psnr, ssim
    from sagin_hil.codecs.perceptual import learned_scores

    cast = np.resize(colour_offset(img, rec), 3)  # a grey image's one offset on all three
    row = {"psnr_db": psnr(img, rec), "ssim": ssim(img, rec), "cast_r": cast[0], "cast_g": cast[1], "cast_b": cast[2]}
    try:
        row["ms_ssim"] = ms_ssim(img, rec)
    except ValueError:  # too small for 5 scales: print n/a rather than stop the evaluation
        row["ms_ssim"] = float("nan")
    return {**row, **learned_scores(scorers, img, rec)}


def _format_eval_row(row: dict[str, float]) -> str:
    """One line of `train eval`: bits, symbols, PSNR, SSIM, MS-SSIM, colour cast and, when present, LPIPS and CLIP-I."""
    ms = "  n/a" if math.isnan(row["ms_ssim"]) else f"{row['ms_ssim']:.3f}"
    text = (f"bits {row['bits']:7.0f} symbols {row['symbols']:6.0f}  PSNR {row['psnr_db']:6.2f} dB  "
            f"SSIM {row['ssim']:.3f}  MS-SSIM {ms}  cast {row['cast_r']:+5.1f}/{row['cast_g']:+5.1f}/{row['cast_b']:+5.1f}")
    if "lpips" in row:
        text += f"  LPIPS {row['lpips']:.4f}"
    if "clip_i" in row:
        text += f"  CLIP-I {row['clip_i']:6.2f}"
    return text


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`."""
    app.add_typer(train_app, name="train")
