"""`sagin-hil calibrate ...`: measurements -> the tables the emulator and controllers load."""

from pathlib import Path
from typing import Optional

import typer

calibrate = typer.Typer(help="Calibrate against measurements: channel fits from recordings, their twin, BLER tables.",
                        no_args_is_help=True)


def _db_grid(text: str, example: str):
    """A dB grid from "start:stop:step" (stop included); a clear error otherwise."""
    import numpy as np

    try:
        start, stop, step = (float(v) for v in text.split(":"))
        if step <= 0 or stop < start:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give start:stop:step in dB with step > 0, e.g. {example}") from None
    return np.arange(start, stop + step / 2, step)


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
    sample_level: bool = typer.Option(
        False, "--sample-level", help="Send the link's own packets (its code size, pilots, headers) through the "
        "channel emulator and the link's receiver, instead of decoding blocks on ideal symbols."),
    profile: Optional[Path] = typer.Option(None, help="With --sample-level: the channel of this calibration "
                                           "profile (the twin) instead of AWGN; Es/N0 still from the grid."),
    packets: int = typer.Option(20, min=1, help="With --sample-level: packets per point."),
    packet_bytes: int = typer.Option(2048, min=16, help="With --sample-level: payload bytes per packet."),
    plot: Optional[Path] = typer.Option(None, help="Also draw the table (PNG); sample level beside the shipped "
                                        "symbol-level table."),
) -> None:
    """Measure code-block error rate vs Es/N0 for each MCS; the link-adaptation controller loads such a table
    (the shipped one is calibration/tables/bler_awgn.json). The table records how it was measured."""
    from rich.console import Console
    from rich.markup import escape

    from sagin_hil.calibration.bler import measure_bler_table
    from sagin_hil.progress import advance_callback, progress_bar

    grid = _db_grid(snr_db, "-6:26:0.25")
    if profile is not None and not sample_level:
        raise typer.BadParameter("--profile sets the channel of --sample-level measurements; add --sample-level")
    try:
        with progress_bar() as bar:
            task = bar.add_task("BLER points (MCS x Es/N0)", total=None)
            if sample_level:
                from sagin_hil.calibration.link_bler import measure_link_bler
                from sagin_hil.calibration.profile import load_profile

                table = measure_link_bler(mcs or None, grid, packets=packets, packet_bytes=packet_bytes,
                                          profile=load_profile(profile) if profile else None, seed=seed,
                                          max_errors=max_errors, progress=advance_callback(bar, task))
            else:
                table = measure_bler_table(mcs or None, grid, n_blocks=blocks, code_k=code_k, max_errors=max_errors,
                                           seed=seed, decoder=decoder, progress=advance_callback(bar, task))
    except ValueError as exc:  # an unknown MCS or decoder: named before any point is measured
        raise typer.BadParameter(str(exc)) from None
    table.save(out)
    if plot is not None:
        from sagin_hil.calibration.bler import BlerTable
        from sagin_hil.calibration.link_bler import plot_bler_table

        plot_bler_table(table, plot, BlerTable.load() if sample_level else None)
    console = Console()
    for name in table.mcs_names:
        console.print(f"{name:>10}: Es/N0 {table.required_snr_db(name, 0.1):6.2f} dB at BLER 0.1")
    console.print(escape(f"table written to {out}; use it with the controller option bler_table={out}"))

@calibrate.command("channel")
def channel_cmd(
    recordings: list[Path] = typer.Argument(..., help="SigMF recordings (NAME.sigmf-meta) of bursts with a known preamble."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the fit: {key: {value, ci95}} (several "
                                             "recordings: {recording: fit})."),
    profile: Optional[Path] = typer.Option(None, help="Write the calibrated twin as TOML (several recordings: "
                                           "one per recording, numbered)."),
    boot: int = typer.Option(200, min=10, help="Bootstrap resamples for the SNR, K and fading-Doppler intervals."),
) -> None:
    """Fit SNR, CFO, Doppler and its rate, delay, Rician K and the fading's maximum Doppler, each with a 95 %
    interval, from recorded bursts (runs write them with `sagin-hil run --record DIR`)."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from sagin_hil.calibration.channel_fit import fit_channel, measure_bursts, read_recording
    from sagin_hil.calibration.profile import write_profile
    from sagin_hil.progress import progress_bar

    console, fits = Console(), {}
    with progress_bar() as bar:
        task = bar.add_task("fitting", total=len(recordings))
        for i, path in enumerate(recordings):
            bar.update(task, description=escape(f"fitting {path.name}"))
            try:
                rec = read_recording(path)
                fit = fit_channel(rec, measure_bursts(rec), n_boot=boot)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
            fits[str(path)] = fit
            if profile is not None:
                out = profile if len(recordings) == 1 else profile.with_name(f"{profile.stem}-{i}{profile.suffix}")
                write_profile(out, fit, rec)
                console.print(escape(f"profile written to {out}"))
            bar.advance(task)
    for path, fit in fits.items():
        table = Table(title=escape(f"{path}: {fit.bursts} bursts over {fit.duration_s:.2f} s"))
        for col in ("parameter", "value", "95 % interval"):
            table.add_column(col)
        for key, v in fit.values.items():
            ci = "-" if v["ci95"] is None else f"[{v['ci95'][0]:.4g}, {v['ci95'][1]:.4g}]"
            table.add_row(key, "not identifiable" if v["value"] is None else f"{v['value']:.6g}", ci)
        console.print(table)
        for note in fit.notes:
            console.print(escape(f"note: {note}"))
    if json_path is not None:
        doc = (next(iter(fits.values())).to_json() if len(fits) == 1
               else {"recordings": {p: f.to_json() for p, f in fits.items()}})
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2))
        console.print(escape(f"fit written to {json_path}"))


@calibrate.command("verify")
def verify_cmd(
    profile: Path = typer.Argument(..., help="Calibration profile (TOML) from `calibrate channel --profile`."),
    recordings: list[Path] = typer.Argument(..., help="Recordings the twin should reproduce."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the comparison as JSON."),
    seed: int = 1,
) -> None:
    """Send the recordings' bursts through the profile's twin and compare EVM and BLER with the recordings';
    the gaps are in dB (BLER: the Es/N0 offset at which the twin's BLER equals the recording's)."""
    import json
    import tempfile

    from rich.console import Console
    from rich.markup import escape

    from sagin_hil.calibration.profile import load_profile
    from sagin_hil.calibration.verify import verify_profile

    try:
        prof = load_profile(profile)
        with tempfile.TemporaryDirectory() as tmp:
            res = verify_profile(prof, recordings, tmp, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console = Console()
    for path, row in res.items():
        line = f"{path}: EVM {row['evm_recording']:.4f} recorded, {row['evm_twin']:.4f} twin ({row['evm_gap_db']:+.2f} dB)"
        if "bler_recording" in row:
            gap = row["bler_gap_db"]
            line += (f"; BLER {row['bler_recording']:.3f} recorded over {row['blocks']} blocks, twin "
                     f"{row['bler_twin']['+0.0 dB']:.3f}; gap " + ("not bracketed" if gap is None else f"{gap:+.2f} dB"))
        console.print(escape(line))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
        console.print(escape(f"comparison written to {json_path}"))


@calibrate.command("channel-map")
def channel_map_cmd(
    out: Path = typer.Option(Path("runs/channel-map"), help="Folder for channel_map.json, channel_map.png and the data set."),
    per_family: int = typer.Option(60, min=4, help="Recordings per scenario family (6 families; about 1.5 s each)."),
    dataset: Optional[Path] = typer.Option(None, help="Reuse a data set (.npz) written by an earlier run instead "
                                           "of generating one; 'shipped' = the one in calibration/tables "
                                           "(900 recordings, 150 per family, seed 1)."),
    recording: Optional[list[str]] = typer.Option(
        None, help="A recording you labelled, as los=PATH or nlos=PATH (SigMF, bursts with our preamble or one "
        "its metadata describes; about 0.1 s of bursts every 0.5 ms); repeat it. The classifiers are also "
        "scored on these."),
    seed: int = 0,
) -> None:
    """Classify links as LoS / NLoS from receiver measurements ([P004]'s channel map): a diffusion model as a
    zero-shot classifier against KNN, gradient boosting and a small neural network, scored on scenario
    families held out of training and on your labelled recordings (docs/calibration.md)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from sagin_hil.calibration import channel_map as cm
    from sagin_hil.progress import advance_callback, progress_bar

    console = Console()
    try:
        pairs = []
        for item in recording or []:
            label, sep, rec_path = item.partition("=")
            if not sep:
                raise ValueError(f"--recording {item!r}: give los=PATH or nlos=PATH")
            pairs.append((label.strip().lower(), rec_path))
        recorded = cm.recorded_samples(pairs) if pairs else None
        if dataset is not None:
            data = cm.load_dataset(cm.SHIPPED_DATASET if str(dataset) == "shipped" else dataset)
        else:
            with progress_bar() as bar:
                task = bar.add_task("recordings through the emulator", total=None)
                data = cm.make_dataset(per_family, seed, progress=advance_callback(bar, task))
            dataset = cm.save_dataset(data, out / "channel_map_data.npz")
            console.print(escape(f"data set written to {dataset}"))
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from None
    result = cm.evaluate_classifiers(data, seed, recorded=recorded)
    path = cm.write_report(result, out)
    table = Table(title=f"LoS / NLoS on held-out families {', '.join(result['test_families'])} "
                        f"({result['test_samples']} samples; trained on {result['train_samples']})")
    cols = ["classifier", "accuracy", "F1", "recall", "latency (ms/sample)"]
    if recorded is not None:
        cols.append(f"accuracy on your {len(recorded['y'])} recordings")
    for col in cols:
        table.add_column(col)
    for name, r in result["classifiers"].items():
        table.add_row(name, f"{r['accuracy']:.3f}", f"{r['f1']:.3f}", f"{r['recall']:.3f}",
                      f"{r['latency_ms_per_sample']:.3f}", *([f"{r['recorded']['accuracy']:.3f}"] if recorded else []))
    console.print(table)
    console.print(escape(f"results written to {path}"))


@calibrate.command("mode-quality")
def mode_quality_cmd(
    modes: str = typer.Option("mode1,mode3_1,mode3_2,mode3_3,jscc-1/12,jscc-1/6",
                              help="Comma-separated modes (the mode registry's names)."),
    es_n0_db: str = typer.Option("-2:20:2", help="Es/N0 grid in dB as start:stop:step (stop included)."),
    images: int = typer.Option(4, min=1, help="Held-out images per point."),
    size: int = typer.Option(128, min=32, help="Image side in px."),
    bpp: float = typer.Option(1.0, min=0.01, help="Bits per pixel of JPEG 2000 (mode1)."),
    retransmissions: int = typer.Option(2, min=0, help="ARQ rounds for packets that failed their CRC."),
    profile: Optional[Path] = typer.Option(None, help="The channel of this calibration profile (the twin) instead "
                                           "of AWGN; Es/N0 still from the grid."),
    seed: int = 0,
    out: Path = typer.Option(Path("mode_quality.json"), help="Where to write the table (JSON)."),
    plot: Optional[Path] = typer.Option(None, help="Also draw PSNR and SSIM against Es/N0 (PNG)."),
) -> None:
    """Quality per mode measured the way the link runs: held-out images encoded by each mode and carried over
    one hop at sample level (packets at the MCS link adaptation picks, with ARQ; analog bursts for JSCC), at
    each Es/N0; the table records how it was measured."""
    import json

    from rich.console import Console

    from sagin_hil.calibration.mode_quality import measure_mode_quality, plot_mode_quality
    from sagin_hil.calibration.profile import load_profile
    from sagin_hil.progress import advance_callback, progress_bar

    grid = _db_grid(es_n0_db, "-2:20:2")
    names = [m.strip() for m in modes.split(",") if m.strip()]
    try:
        with progress_bar() as bar:
            task = bar.add_task("quality points (mode x Es/N0)", total=None)
            table = measure_mode_quality(names, grid, n_images=images, size=size, bpp=bpp,
                                         profile=load_profile(profile) if profile else None,
                                         max_retransmissions=retransmissions, seed=seed,
                                         progress=advance_callback(bar, task))
    except (KeyError, ValueError) as exc:  # an unknown mode or a bad grid: named before anything is measured
        raise typer.BadParameter(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1) + "\n")
    if plot is not None:
        plot_mode_quality(table, plot)
    console = Console()
    for name, row in table["modes"].items():
        console.print(f"{name:>10}: PSNR " + ", ".join(f"{q:.1f}" for q in row["psnr_db"])
                      + f" dB at Es/N0 {', '.join(f'{v:g}' for v in table['es_n0_db'])} dB")
    console.print(f"table written to {out}")


def modes_cmd(
    images: int = typer.Option(8, help="Held-out images to measure on."),
    size: int = typer.Option(256, help="Image side in px."),
    vq: bool = typer.Option(True, help="Also measure Modes 3_1..3_3 (needs the trained VQ weights)."),
    jscc: bool = typer.Option(True, help="Also measure the deep JSCC modes over AWGN (needs the trained JSCC weights)."),
    modes: Optional[str] = typer.Option(None, help="Comma-separated modes to measure (default: all); the "
                                        "stored rows of the others are kept."),
    weights_dir: Optional[Path] = typer.Option(None, help="Your weights folder: blip/ + stable-diffusion/ "
                                               "measure Mode 2 and the latent Modes 3_x on them; lpips/ and "
                                               "clip/ add LPIPS and CLIP image similarity to every row."),
    device: str = typer.Option("auto", help="Torch device of the neural codecs and metrics: auto (CUDA if present), cpu."),
    real_times: bool = typer.Option(False, "--real-times", help="Time BLIP-base and Stable Diffusion 2 "
                                    "(random weights, real configurations) on this machine (~10 min on 2 cores)."),
    j2k_curve: bool = typer.Option(True, help="Re-measure the JPEG 2000 rate-quality curve; --no-j2k-curve "
                                   "keeps the stored one and its timings (adding one mode changes nothing else)."),
) -> None:
    """Measure the mode table (bits, PSNR, SSIM, MS-SSIM, compute time) and the JPEG 2000 rate-quality curve."""
    from sagin_hil.calibration.quality import build_mode_table
    from sagin_hil.codecs.modes import MODE_TABLE_PATH
    from sagin_hil.codecs.perceptual import MetricWeightsError

    names = [m.strip() for m in modes.split(",") if m.strip()] if modes else None
    try:
        table = build_mode_table(images, size, vq=vq, jscc=jscc, modes=names,
                                 weights_dir=str(weights_dir) if weights_dir else None, device=device,
                                 real_times=real_times, j2k_curve=j2k_curve)
    except (ValueError, MetricWeightsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, m in table["modes"].items():
        if "snr_db" in m:  # an analog mode: quality over the channel SNR
            curve = ", ".join(f"{q:.1f}" for q in m["psnr_db"])
            typer.echo(f"mode {name:9s} {m['symbols']:7d} symbols  PSNR {curve} dB at SNR "
                       f"{', '.join(f'{s:g}' for s in m['snr_db'])} dB  compute {1e3 * m['compute_time_s']:.1f} ms")
        else:
            learned = "".join(f"  {label} {m[k]:.3f}" for k, label in (("lpips", "LPIPS"), ("clip_i", "CLIP-I")) if k in m)
            typer.echo(f"mode {name:9s} {m['bits']:7d} bits  PSNR {m['psnr_db']:.2f} dB  "
                       f"SSIM {m['ssim']:.3f}{learned}  compute {1e3 * m['compute_time_s']:.1f} ms")
    typer.echo(f"written to {MODE_TABLE_PATH}")


@calibrate.command("jscc-surface")
def jscc_surface_cmd(
    out: Optional[Path] = typer.Option(None, help="Where to write the surface (JSON); default "
                                       "codecs/weights/jscc_ssim_surface.json, where JCRRA reads it."),
    ratios: str = typer.Option("1/12,1/6", help="JSCC ratios to measure (each a registered codec jscc-<ratio>)."),
    snr_db: str = typer.Option("-2:20:2", help="SNR grid in dB as start:stop:step (stop included)."),
    tiles: int = typer.Option(64, min=4, help="64 x 64 held-out tiles per point."),
    noise_seeds: int = typer.Option(2, min=1, help="Noise draws per tile."),
    quick: bool = typer.Option(False, help="8 tiles, one seed, every 4 dB (checks the code path in seconds)."),
    weights_dir: Optional[Path] = typer.Option(None, help="JSCC weights folder (default codecs/weights)."),
    threads: int = typer.Option(1, min=1, help="torch threads."),
) -> None:
    """Measure each JSCC codec's SSIM over SNR on held-out tiles and fit the SSIM(ratio, SNR) surface JCRRA
    plans with (docs/jcrra.md), and JPEG's rate-SSIM table on the same tiles (the greedy-JPEG baseline); re-run
    it whenever new JSCC weights land. Prints the fit error."""
    import json

    import torch

    from sagin_hil.calibration.ssim_surface import SURFACE_PATH, fit_surface, measure_jpeg_ssim, measure_jscc_ssim
    from sagin_hil.progress import advance_callback, progress_bar

    torch.set_num_threads(threads)
    grid = _db_grid(snr_db, "-2:20:2")
    grid = grid[::2] if quick else grid
    names = [r.strip() for r in ratios.split(",") if r.strip()]
    if quick:
        tiles, noise_seeds = 8, 1
    with progress_bar() as bar:
        task = bar.add_task("SSIM points (ratio x SNR)", total=len(names) * len(grid))
        try:
            measured = measure_jscc_ssim(names, grid.tolist(), tiles, noise_seeds, weights_dir,
                                         progress=advance_callback(bar, task))
        except (KeyError, ValueError) as exc:
            raise typer.BadParameter(f"--ratios {ratios!r}: {exc}") from None
    surface = fit_surface(measured)
    path = out or SURFACE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    p10 = fit_surface(measured, key="ssim_p10").to_dict()
    p10["fit"].pop("measured")  # stored once, with the mean's fit
    jpeg = measure_jpeg_ssim(n_tiles=tiles)  # the greedy-JPEG baseline's table, same tiles
    path.write_text(json.dumps({**surface.to_dict(), "quantiles": {"0.1": p10}, "jpeg_rate_ssim": jpeg}, indent=1)
                    + "\n")
    f = surface.fit
    typer.echo(f"fit over {f['points']} points: RMSE {f['rmse']:.4f}, max |error| {f['max_abs_error']:.4f} SSIM "
               f"(10th percentile: RMSE {p10['fit']['rmse']:.4f}, max {p10['fit']['max_abs_error']:.4f})")
    typer.echo(f"written to {path}")


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`; `train modes` joins the codecs' `train` group (registered first):
    users find it beside the training it follows, while the measuring itself lives in this layer."""
    app.add_typer(calibrate, name="calibrate")
    train = next((g.typer_instance for g in app.registered_groups if g.name == "train"), None)
    (train or calibrate).command("modes")(modes_cmd)
