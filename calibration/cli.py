"""`sagin-hil calibrate ...`: measurements -> the tables the emulator and controllers load."""

from pathlib import Path
from typing import Optional

import typer

calibrate = typer.Typer(help="Measure calibration tables (BLER vs SNR per MCS) at sample level.", no_args_is_help=True)


@calibrate.command("bler")
def bler(
    out: Path = typer.Option(Path("bler_awgn.json"), help="Where to write the table (JSON)."),
    mcs: Optional[list[str]] = typer.Option(None, help="MCS names, e.g. --mcs qpsk-1/2 --mcs 16qam-3/4; default all."),
    snr_db: str = typer.Option("-6:26:0.25", help="Es/N0 grid in dB as start:stop:step (stop included)."),
    blocks: int = typer.Option(200, min=10, help="Code blocks per point (fewer once max-errors are seen)."),
    code_k: int = typer.Option(2048, min=40, help="Information bits per 5G NR code block."),
    max_errors: int = typer.Option(100, min=1, help="Stop a point after this many block errors."),
    decoder: str = typer.Option(
        "auto", help="LDPC decoder: auto (5G NR default, layered-nms:0.75, as the link decodes unless its "
        "flowgraph says otherwise), layered-nms[:SCALE], layered-oms[:OFFSET] or flooding-spa; measure with "
        "the decoder the link will use."),
    seed: int = 0,
) -> None:
    """Measure code-block error rate vs Es/N0 on AWGN for each MCS; the link-adaptation controller loads
    such a table (the shipped one is calibration/tables/bler_awgn.json)."""
    import numpy as np
    from rich.console import Console
    from rich.markup import escape

    from sagin_hil.calibration.bler import measure_bler_table
    from sagin_hil.progress import advance_callback, progress_bar

    try:
        start, stop, step = (float(v) for v in snr_db.split(":"))
        if step <= 0 or stop < start:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{snr_db!r}: give start:stop:step in dB with step > 0, e.g. -6:26:0.25") from None
    grid = np.arange(start, stop + step / 2, step)
    try:
        with progress_bar() as bar:
            task = bar.add_task("BLER points (MCS x Es/N0)", total=None)
            table = measure_bler_table(mcs or None, grid, n_blocks=blocks, code_k=code_k, max_errors=max_errors,
                                       seed=seed, decoder=decoder, progress=advance_callback(bar, task))
    except ValueError as exc:  # an unknown MCS or decoder: named before any point is measured
        raise typer.BadParameter(str(exc)) from None
    table.save(out)
    console = Console()
    for name in table.mcs_names:
        console.print(f"{name:>10}: Es/N0 {table.required_snr_db(name, 0.1):6.2f} dB at BLER 0.1")
    console.print(escape(f"table written to {out}; use it with the controller option bler_table={out}"))

def modes_cmd(
    images: int = typer.Option(8, help="Held-out images to measure on."),
    size: int = typer.Option(256, help="Image side in px."),
    vq: bool = typer.Option(True, help="Also measure Modes 3_1..3_3 (needs the trained VQ weights)."),
    jscc: bool = typer.Option(True, help="Also measure the deep JSCC modes over AWGN (needs the trained JSCC weights)."),
) -> None:
    """Measure the mode table (bits, PSNR, SSIM, compute time) and the JPEG 2000 rate-quality curve."""
    from sagin_hil.calibration.quality import build_mode_table
    from sagin_hil.codecs.modes import MODE_TABLE_PATH

    table = build_mode_table(images, size, vq=vq, jscc=jscc)
    for name, m in table["modes"].items():
        if "snr_db" in m:  # an analog mode: quality over the channel SNR
            curve = ", ".join(f"{q:.1f}" for q in m["psnr_db"])
            typer.echo(f"mode {name:9s} {m['symbols']:7d} symbols  PSNR {curve} dB at SNR "
                       f"{', '.join(f'{s:g}' for s in m['snr_db'])} dB  compute {1e3 * m['compute_time_s']:.1f} ms")
        else:
            typer.echo(f"mode {name:9s} {m['bits']:7d} bits  PSNR {m['psnr_db']:.2f} dB  "
                       f"SSIM {m['ssim']:.3f}  compute {1e3 * m['compute_time_s']:.1f} ms")
    typer.echo(f"written to {MODE_TABLE_PATH}")


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`; `train modes` joins the codecs' `train` group (registered first):
    users find it beside the training it follows, while the measuring itself lives in this layer."""
    app.add_typer(calibrate, name="calibrate")
    train = next((g.typer_instance for g in app.registered_groups if g.name == "train"), None)
    (train or calibrate).command("modes")(modes_cmd)
