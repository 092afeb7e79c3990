"""BLER tables: code-block error rate vs Es/N0 per MCS, measured at sample level, for the link abstraction.

`measure_bler_table` runs bits -> 5G NR LDPC -> Gray mapping -> AWGN -> max-log demapping -> layered
min-sum decoding for every MCS and SNR point; `BlerTable` stores the result as JSON and answers
`bler(mcs, snr_db)` (log-domain interpolation) and `required_snr_db(mcs, target_bler)` for the link
adaptation controller. Regenerate the shipped table with `python -m sagin_hil.calibration.bler`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["BlerTable", "measure_bler_table", "DEFAULT_TABLE", "BLER_FLOOR"]

DEFAULT_TABLE = "bler_awgn.json"
BLER_FLOOR = 1e-5  # log-domain floor: a measured 0 means "below about 1 / blocks"


@dataclass
class BlerTable:
    """BLER vs Es/N0 per MCS on one channel.

    Parameters
    ----------
    snr_db : list of float
        Es/N0 grid (dB), ascending.
    curves : dict[str, list of float]
        Measured block error rate per MCS name on that grid.
    meta : dict
        How it was measured (code, decoder, channel, blocks per point, date).
    """

    snr_db: list[float]
    curves: dict[str, list[float]]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grid = np.asarray(self.snr_db, dtype=np.float64)
        if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
            raise ValueError(f"snr_db must be an ascending grid of >= 2 points, got {self.snr_db!r}")
        for name, values in self.curves.items():
            v = np.asarray(values, dtype=np.float64)
            if v.shape != grid.shape or np.any((v < 0) | (v > 1)) or not np.all(np.isfinite(v)):
                raise ValueError(f"BLER of {name!r} must be {grid.size} values in [0, 1], got {values!r}")

    # --- persistence -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> "BlerTable":
        """Load a table; path=None loads the shipped AWGN table (calibration/tables/bler_awgn.json)."""
        if path is None:
            text = resources.files("sagin_hil.calibration").joinpath("tables", DEFAULT_TABLE).read_text()
        else:
            p = Path(path)
            if not p.exists():
                raise ValueError(
                    f"BLER table {str(p)!r} not found; measure one with measure_bler_table(...).save(path)"
                )
            text = p.read_text()
        data = json.loads(text)
        if data.get("format") != "sagin-hil bler table 1":
            raise ValueError(f"{path or DEFAULT_TABLE} is not a sagin-hil BLER table (format {data.get('format')!r})")
        return cls(data["snr_db"], {k: v["bler"] for k, v in data["mcs"].items()}, data.get("meta", {}))

    def save(self, path: str | Path) -> None:
        """Write the table as JSON."""
        # one line per curve keeps the file readable and diffable
        lines = [
            "{",
            '"format": "sagin-hil bler table 1",',
            f'"snr_db": {json.dumps([round(float(s), 4) for s in self.snr_db])},',
            '"mcs": {',
            ",\n".join(
                f"  {json.dumps(k)}: {{\"bler\": {json.dumps([float(f'{b:.6g}') for b in v])}}}"
                for k, v in self.curves.items()
            ),
            "},",
            f'"meta": {json.dumps(self.meta, indent=1)}',
            "}",
        ]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("\n".join(lines) + "\n")

    # --- queries -----------------------------------------------------------------------------------
    @property
    def mcs_names(self) -> list[str]:
        return list(self.curves)

    def _curve(self, mcs_name: str) -> np.ndarray:
        if mcs_name not in self.curves:
            raise ValueError(f"MCS {mcs_name!r} is not in this BLER table; it has: {', '.join(self.curves)}")
        # BLER falls with SNR: a running minimum removes Monte Carlo wiggles
        v = np.minimum.accumulate(np.asarray(self.curves[mcs_name], dtype=np.float64))
        return np.log10(np.maximum(v, BLER_FLOOR))

    def bler(self, mcs_name: str, snr_db):
        """BLER of `mcs_name` at Es/N0 `snr_db` (scalar or array), interpolated linearly in log10(BLER).

        Outside the grid the end values hold; values at the floor (1e-5) mean "measured zero".
        """
        logb = np.interp(np.asarray(snr_db, dtype=np.float64), self.snr_db, self._curve(mcs_name))
        out = np.where(logb <= math.log10(BLER_FLOOR) + 1e-12, 0.0, 10.0**logb)
        return float(out) if np.ndim(out) == 0 else out

    def required_snr_db(self, mcs_name: str, target_bler: float = 0.1) -> float:
        """Smallest Es/N0 (dB) with BLER <= target_bler; inf if the grid never gets there."""
        if not 0 < target_bler < 1:
            raise ValueError(f"target_bler={target_bler!r} must lie in (0, 1), e.g. 0.1")
        logb = self._curve(mcs_name)
        lt = math.log10(target_bler)
        grid = np.asarray(self.snr_db, dtype=np.float64)
        if logb[0] <= lt:
            return float(grid[0])
        for i in range(1, grid.size):
            if logb[i] <= lt:
                f = (logb[i - 1] - lt) / (logb[i - 1] - logb[i])
                return float(grid[i - 1] + f * (grid[i] - grid[i - 1]))
        return math.inf


def _block_n(k: int, rate: float, bits_per_symbol: int) -> int:
    """Codeword length near k / rate, a whole number of symbols."""
    return int(round(k / rate / bits_per_symbol)) * bits_per_symbol


def measure_bler_table(
    mcs_names: list[str] | None = None,
    snr_db_grid=None,
    n_blocks: int = 200,
    code_k: int = 2048,
    iterations: int = 10,
    max_errors: int = 100,
    seed: int = 0,
    decoder: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> BlerTable:
    r"""Measure code-block error rate vs Es/N0 on AWGN for each MCS of sagin_hil.phy.mcs.

    Parameters
    ----------
    mcs_names : list of str, optional
        MCS names ("qpsk-1/2", ...); default: all of MCS_TABLE.
    snr_db_grid : array of float, optional
        Es/N0 grid in dB (ascending); default -6 to 26 dB in 0.25 dB steps.
    n_blocks : int
        Code blocks per point (fewer once `max_errors` block errors are seen).
    code_k : int
        Information bits per 5G NR code block; n = k / rate rounded to whole symbols.
    iterations : int
        Layered normalised min-sum iterations (early stop).
    max_errors : int
        Stop a point after this many block errors (the estimate is then good to about 10 %).
    seed : int
    decoder : str
        sagin_hil.phy.ldpc.decoder_for spec; "auto" is the 5G NR default (layered NMS, scale 0.75), the
        decoder the link uses unless its flowgraph says otherwise.
    progress : callable(done, total), optional
        Called after each (MCS, SNR) point, e.g. to drive a progress bar.

    Output
    ------
    BlerTable
        Points above the first SNR with zero errors in `n_blocks` are set to 0 without decoding
        (BLER falls monotonically with SNR).
    """
    from sagin_hil.phy.ldpc import decoder_for, describe_decoder, nr_code
    from sagin_hil.phy.mcs import MCS_TABLE, get_mcs
    from sagin_hil.phy.modulation import Constellation
    from sagin_hil.phy.theory import awgn

    names = [m.name for m in MCS_TABLE] if mcs_names is None else list(mcs_names)
    mcs_list = [get_mcs(n) for n in names]  # raises on unknown names
    grid = np.arange(-6.0, 26.01, 0.25) if snr_db_grid is None else np.asarray(snr_db_grid, dtype=np.float64)
    if n_blocks < 1:
        raise ValueError(f"n_blocks={n_blocks} must be >= 1")
    rng = np.random.default_rng(seed)
    batch = 50
    table: dict[str, list[float]] = {}
    codes: dict[str, dict[str, Any]] = {}
    t0 = time.time()
    decoder_text, total, done_points = "", len(mcs_list) * len(grid), 0
    for mcs in mcs_list:
        const = Constellation(mcs.modulation)
        n = _block_n(code_k, mcs.code_rate, const.bits_per_symbol)
        code = nr_code(code_k, n)
        dec = decoder_for(code, decoder, iterations)  # a bad spec stops here, before any point is measured
        decoder_text = describe_decoder(dec)
        codes[mcs.name] = {"k": code_k, "n": n, "code": code.name}
        values: list[float] = []
        done = False
        for snr_db in grid:
            done_points += 1
            if done:
                values.append(0.0)
                if progress is not None:
                    progress(done_points, total)
                continue
            n0 = 10 ** (-snr_db / 10)  # Es = 1
            errors = blocks = 0
            while blocks < n_blocks and errors < max_errors:
                b = min(batch, n_blocks - blocks)
                u = rng.integers(0, 2, (b, code_k), dtype=np.uint8)
                x = const.map(code.encode(u))
                y = awgn(x, snr_db, rng).astype(np.complex64)
                res = dec(const.demap(y, n0, method="maxlog"))
                errors += int((res.info_bits != u).any(-1).sum())
                blocks += b
            values.append(errors / blocks)
            done = errors == 0
            if progress is not None:
                progress(done_points, total)
        table[mcs.name] = values
    meta = {
        "channel": "AWGN, Es/N0 per symbol, unit-energy Gray constellations, max-log demapping",
        "code": "5G NR LDPC (TS 38.212), rv 0, no bit interleaver",
        "decoder": f"{decoder_text}, early stop",
        "blocks_per_point": n_blocks,
        "max_errors_per_point": max_errors,
        "code_blocks": codes,
        "seed": seed,
        "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "measure_time_s": round(time.time() - t0, 1),
    }
    return BlerTable([float(s) for s in grid], table, meta)


if __name__ == "__main__":
    out = Path(__file__).with_name("tables") / DEFAULT_TABLE
    tab = measure_bler_table(n_blocks=2000, max_errors=100)
    tab.save(out)
    for name in tab.mcs_names:
        print(f"{name:>10}: required Es/N0 for BLER 0.1 = {tab.required_snr_db(name):.2f} dB")
    print(f"written to {out} in {tab.meta['measure_time_s']} s")
