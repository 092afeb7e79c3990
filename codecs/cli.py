"""Command-line commands of this layer, registered on the `sagin-hil` app (heavy imports stay inside commands).

`sagin-hil train jscc | vq | modes | eval`: train the project's codecs on the shipped images, measure the
mode table, and evaluate codecs on the held-out images.
"""

from pathlib import Path
from typing import Optional

import typer

train_app = typer.Typer(help="Train the project's codecs (deep JSCC, VQ) and measure the mode table.", no_args_is_help=True)


@train_app.command("jscc")
def train_jscc_cmd(
    minutes: float = typer.Option(28.0, help="Total wall-clock budget, split over the ratios (1/6 warm-starts from 1/12)."),
    ratios: str = typer.Option("1/12,1/6", help="Comma-separated bandwidth ratios k/n."),
    threads: int = typer.Option(2, help="CPU threads for torch."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Weights folder (default: the package's codecs/weights)."),
    batch: int = typer.Option(16, help="Patches per step."),
    patch: int = typer.Option(64, help="Patch side in px."),
) -> None:
    """Train deep JSCC models on patches of the shipped train images; write jscc-<ratio>.safetensors."""
    from sagin_hil.codecs.jscc import weights_path
    from sagin_hil.codecs.train import train_jscc

    names = [r.strip() for r in ratios.split(",") if r.strip()]
    first = None
    for i, ratio in enumerate(names):
        typer.echo(f"training jscc {ratio} for {minutes / len(names):.1f} min on {threads} threads")
        res = train_jscc(ratio, minutes / len(names), batch=batch, patch=patch, device=device, threads=threads,
                         out_dir=out_dir, warm_start=first, log=typer.echo)
        first = first or weights_path(ratio, out_dir)
        typer.echo(f"jscc {ratio}: {res['steps']} steps in {res['train_time_s']:.0f} s; held-out PSNR by SNR "
                   + ", ".join(f"{k} dB: {v:.2f}" for k, v in res["eval_psnr_db"].items()) + f"; saved {res['path']}")


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


@train_app.command("modes")
def modes_cmd(
    images: int = typer.Option(8, help="Held-out images to measure on."),
    size: int = typer.Option(256, help="Image side in px."),
    vq: bool = typer.Option(True, help="Also measure Modes 3_1..3_3 (needs the trained VQ weights)."),
) -> None:
    """Measure the mode table (bits, PSNR, SSIM, compute time) and the JPEG 2000 rate-quality curve."""
    from sagin_hil.codecs.modes import MODE_TABLE_PATH, build_mode_table

    table = build_mode_table(images, size, vq=vq)
    for name, m in table["modes"].items():
        typer.echo(f"mode {name:4s} {m['codec']:9s} {m['bits']:7d} bits  PSNR {m['psnr_db']:.2f} dB  "
                   f"SSIM {m['ssim']:.3f}  compute {1e3 * m['compute_time_s']:.1f} ms")
    typer.echo(f"written to {MODE_TABLE_PATH}")


@train_app.command("eval")
def eval_cmd(
    codec: str = typer.Argument(..., help="Registry name, e.g. jpeg2000, jscc-1/12, vq-3_2."),
    images: int = typer.Option(8, help="Held-out images."),
    size: int = typer.Option(256, help="Image side in px."),
    budget_bits: Optional[int] = typer.Option(None, help="Bit budget (jpeg2000)."),
    snr_db: float = typer.Option(10.0, help="AWGN SNR for analog codecs (jscc)."),
    perceptual: bool = typer.Option(False, help="Also LPIPS and CLIPScore (needs --weights-dir)."),
    weights_dir: Optional[Path] = typer.Option(None, help="Folder with user-supplied LPIPS / CLIP weights."),
) -> None:
    """PSNR, SSIM and MS-SSIM of a codec on the held-out images."""
    import numpy as np

    from sagin_hil.codecs import CodecError, get_codec
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.metrics import MetricWeightsError, ms_ssim, perceptual_metrics, psnr, ssim

    if perceptual:
        try:
            perceptual_metrics(weights_dir)
        except MetricWeightsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo("perceptual weights found; LPIPS/CLIPScore scoring needs the lpips / transformers packages", err=True)
    try:
        c = get_codec(codec)
    except (ValueError, CodecError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    rng = np.random.default_rng(0)
    for name, img in load_images(images, size, "eval"):
        if c.kind == "analog":
            pay = c.encode(img, snr_db=snr_db)
            n0 = 10 ** (-snr_db / 10)
            rx = pay.symbols + (rng.normal(size=pay.n_symbols) + 1j * rng.normal(size=pay.n_symbols)) * np.sqrt(n0 / 2)
            rec = c.decode(pay.data, symbols=rx, snr_db=snr_db)
        else:
            pay = c.encode(img, budget_bits=budget_bits or size * size) if codec == "jpeg2000" else c.encode(img)
            rec = c.decode(pay.data)
        typer.echo(f"{name:22s} bits {pay.n_bits:7d} symbols {pay.n_symbols:6d}  PSNR {psnr(img, rec):6.2f} dB  "
                   f"SSIM {ssim(img, rec):.3f}  MS-SSIM {ms_ssim(img, rec):.3f}")


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`."""
    app.add_typer(train_app, name="train")
