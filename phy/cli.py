"""Command-line commands of this layer, registered on the `sagin-hil` app (heavy imports stay inside commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _parse_range(spec: str) -> list[float]:
    """"START:STOP:STEP" (STOP included) or a comma list -> SNR values in dB."""
    try:
        if ":" in spec:
            start, stop, step = (float(v) for v in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = int(round((stop - start) / step)) + 1
            return [round(start + i * step, 6) for i in range(n)]
        return [float(v) for v in spec.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{spec!r} is not START:STOP:STEP (e.g. -2:12:1) or a comma list of dB values") from None


def ber(
    modulation: str = typer.Option("qpsk", help="bpsk, qpsk, 8psk, 16qam, 64qam, 16apsk, 32apsk"),
    code: str = typer.Option("none", help="none, nr:K:N (5G NR LDPC) or dvbs2:RATE:short|normal"),
    channel: str = typer.Option("awgn", help="awgn or rician (flat, per-symbol, perfect CSI)"),
    k_factor_db: float = typer.Option(10.0, help="Rician K factor in dB (rician channel)"),
    snr_db: str = typer.Option("-2:12:1", help="Es/N0 points: START:STOP:STEP or a comma list"),
    out: Path = typer.Option(Path("runs/ber"), "--out", help="Folder for ber.csv and ber.png"),
    target_errors: int = typer.Option(300, help="Stop a point after this many bit (uncoded) or block errors"),
    max_bits: int = typer.Option(2_000_000, help="Stop a point after this many information bits"),
    demapper: str = typer.Option("maxlog", help="maxlog or exact"),
    decoder: str = typer.Option(
        "auto", help="LDPC decoder: auto (per code family: 5G NR layered-nms:0.75, DVB-S2 layered-nms:0.875), "
        "layered-nms[:SCALE], layered-oms[:OFFSET] or flooding-spa"),
    iterations: Optional[int] = typer.Option(
        None, min=1, help="LDPC decoder iterations (default per code family: 5G NR 10, DVB-S2 50)"),
    seed: int = typer.Option(1, help="Random seed"),
) -> None:
    """Simulated BER (and BLER with a code) against theory: writes DIR/ber.csv and DIR/ber.png."""
    import csv

    import numpy as np
    from rich.console import Console
    from rich.markup import escape

    from sagin_hil.phy import theory
    from sagin_hil.phy.ldpc import decoder_for, describe_decoder
    from sagin_hil.progress import progress_bar
    from sagin_hil.phy.modulation import Constellation

    console = Console()
    try:
        const = Constellation(modulation)
        ldpc = theory.parse_code(code)
        if channel not in ("awgn", "rician"):
            raise ValueError(f"unknown channel {channel!r}; choose awgn or rician")
        if demapper not in ("maxlog", "exact"):
            raise ValueError(f"unknown demapper {demapper!r}; choose maxlog or exact")
        if ldpc is None and decoder != "auto":
            raise ValueError(f"--decoder {decoder!r} needs a code: add --code nr:K:N or dvbs2:RATE:short")
        decoder_text = "" if ldpc is None else describe_decoder(decoder_for(ldpc, decoder, iterations))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    points = _parse_range(snr_db)
    rate = 1.0 if ldpc is None else ldpc.k / ldpc.n
    rng = np.random.default_rng(seed)
    rows = []
    with progress_bar() as progress:  # on stderr: a piped stdout gets only the results
        task = progress.add_task(escape(f"{modulation} {code} {channel}"), total=len(points))
        for s in points:
            res = theory.simulate_ber(
                const.name, s, ldpc, channel, k_factor_db, target_errors, max_bits, demapper, iterations, rng,
                decoder=decoder,
            )
            th = theory.ber_awgn(const.name, s) if channel == "awgn" else theory.ber_rician(const.name, s, k_factor_db)
            rows.append(
                {
                    "esn0_db": s,
                    "ebn0_db": round(s - 10 * np.log10(const.bits_per_symbol * rate), 4),
                    "ber_sim": res["ber"],
                    "ber_theory_uncoded": float(th),
                    "bit_errors": res["bit_errors"],
                    "bits": res["bits"],
                    "bler_sim": res.get("bler", ""),
                    "block_errors": res.get("block_errors", ""),
                    "blocks": res.get("blocks", ""),
                    "capacity_bits": float(theory.capacity_constellation(const.name, s)),
                }
            )
            progress.advance(task)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ber.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    title = f"{modulation}, code {code}, {channel}" + (f" K={k_factor_db} dB" if channel == "rician" else "")
    _plot(rows, out / "ber.png", title + (f"\n{decoder_text}" if decoder_text else ""))
    if decoder_text:
        console.print(f"decoder: {escape(decoder_text)}")
    for r in rows:
        line = f"Es/N0 {r['esn0_db']:6.2f} dB  BER {r['ber_sim']:.3e}  theory(uncoded) {r['ber_theory_uncoded']:.3e}"
        console.print(line + (f"  BLER {r['bler_sim']:.3e}" if ldpc is not None else ""))
    console.print(escape(f"wrote {out / 'ber.csv'} and {out / 'ber.png'}"))


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [r["esn0_db"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.semilogy(s, [max(r["ber_theory_uncoded"], 1e-12) for r in rows], "k-", label="theory, uncoded BER")
    coded = rows[0]["bler_sim"] != ""
    label = "simulated BER after decoding" if coded else "simulated BER"
    ax.semilogy(s, [r["ber_sim"] if r["ber_sim"] > 0 else float("nan") for r in rows], "o", label=label)
    if coded:
        ax.semilogy(s, [r["bler_sim"] if r["bler_sim"] > 0 else float("nan") for r in rows], "s--", label="simulated BLER")
    ax.set_xlabel("Es/N0 (dB)")
    ax.set_ylabel("error rate")
    ax.set_ylim(bottom=1e-7, top=1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    """Add this layer's commands to `app`."""
    app.command("ber")(ber)
