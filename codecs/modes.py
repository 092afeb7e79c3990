"""Transmission modes: the one registry every layer reads (`MODES`), and their measured tables.

A :class:`ModeSpec` says what a mode is: its codec, whether it crosses the hops as LDPC-coded bits (the UAV
decodes and forwards) or as analog symbols (the UAV amplifies and forwards), how its codec budget follows
from an :class:`~sagin_hil.datatypes.Allocation`, and how its bits, quality and compute time are predicted
from the measured mode table. The runner, the flowgraph validator and every controller read modes from
`MODES`; nothing else spells mode names.

| mode | codec | carrier | paper 000's name |
|---|---|---|---|
| mode1 | jpeg2000 | bits, rate set by the controller | Mode 1 (JPEG 2000 + LDPC) |
| mode2 | caption-t2i | bits, a fixed 64-byte caption field | Mode 2 (caption, text-to-image; user weights) |
| mode3_1 .. mode3_3 | gen-3_1 .. gen-3_3 | bits, fixed by the latent grid | Modes 3_1..3_3 (VQ features, diffusion decoder; on Stable Diffusion with user weights) |
| jscc-1/12, jscc-1/6 | the JSCC codec of that ratio | analog symbols | (deep JSCC, paper 002) |
| spiff | spiff | bits, set by the image's content (box + kept patches) | (SPIFF, paper 003) |

Every figure of the table is measured on the held-out images of this package by
`sagin_hil.calibration.quality.build_mode_table` (`sagin-hil train modes`), stored in
codecs/weights/mode_table.json and read back by :func:`load_mode_table`; nothing here is assumed.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sagin_hil.codecs.base import Budget
from sagin_hil.registry import Registry

__all__ = [
    "MODES", "ModeSpec", "MODE_TABLE_PATH", "MIN_MODE1_BITS", "RateQualityTable", "available_modes", "get_mode",
    "j2k_bits_for_psnr", "j2k_rate_quality", "load_mode_table", "file_digest", "stale_modes", "warn_if_stale",
    "remeasure_hint",
]

MODE_TABLE_PATH = Path(__file__).parent / "weights" / "mode_table.json"
MIN_MODE1_BITS = 2048  # below this JPEG 2000's own headers leave nothing for the image


class RateQualityTable:
    """Measured JPEG 2000 rate-quality points: bpp (increasing) -> mean PSNR dB (made non-decreasing).

    Parameters
    ----------
    bpp: budgets in bits per pixel, distinct and > 0.
    psnr_db: mean PSNR at each budget.
    """

    def __init__(self, bpp: Any, psnr_db: Any):
        bpp, psnr = np.asarray(bpp, float), np.asarray(psnr_db, float)
        if bpp.ndim != 1 or bpp.shape != psnr.shape or len(bpp) < 2:
            raise ValueError(f"rate-quality table needs >= 2 matching points; got bpp {bpp.shape}, psnr {psnr.shape}")
        order = np.argsort(bpp)
        bpp, psnr = bpp[order], psnr[order]
        if np.any(bpp <= 0) or np.any(np.diff(bpp) <= 0):
            raise ValueError(f"bpp must be distinct and > 0; got {bpp}")
        self.bpp, self.psnr_db = bpp, np.maximum.accumulate(psnr)

    @classmethod
    def coerce(cls, table: Any) -> RateQualityTable:
        """A RateQualityTable from itself, {"bpp": [...], "psnr_db": [...]}, or a list of (bpp, psnr) pairs."""
        if isinstance(table, cls):
            return table
        if isinstance(table, dict) and "bpp" in table and ("psnr_db" in table or "psnr" in table):
            return cls(table["bpp"], table.get("psnr_db", table.get("psnr")))
        if isinstance(table, (list, tuple)) and table:
            arr = np.asarray(table, float)
            if arr.ndim == 2 and arr.shape[1] == 2:
                return cls(arr[:, 0], arr[:, 1])
        raise ValueError(f"cannot read a rate-quality table from {type(table).__name__}; "
                         "give {'bpp': [...], 'psnr_db': [...]} or [(bpp, psnr_db), ...]")

    def psnr_at(self, bpp: Any) -> np.ndarray:
        """PSNR at `bpp`, linear in log(bpp) between points, clamped at the ends."""
        return np.interp(np.log(np.maximum(np.asarray(bpp, float), 1e-12)), np.log(self.bpp), self.psnr_db)

    def bpp_for(self, psnr_db: float) -> float:
        """Smallest budget reaching `psnr_db` (inf if the table never does)."""
        if psnr_db > self.psnr_db[-1]:
            return math.inf
        if psnr_db <= self.psnr_db[0]:
            return float(self.bpp[0])
        i = int(np.searchsorted(self.psnr_db, psnr_db))
        lo, hi = self.psnr_db[i - 1], self.psnr_db[i]
        frac = 0.0 if hi == lo else (psnr_db - lo) / (hi - lo)
        return float(np.exp(np.log(self.bpp[i - 1]) + frac * (np.log(self.bpp[i]) - np.log(self.bpp[i - 1]))))


@dataclass(frozen=True)
class ModeSpec:
    """One transmission mode.

    name: the mode's one spelling ("mode1", "mode3_2", "jscc-1/12"); codec: its codec registry name;
    carrier: "bits" (LDPC-coded, decode and forward) or "analog" (channel symbols, amplify and forward);
    table_key: its row in the mode table; rate_adaptive: the controller sets its bits per pixel (JPEG 2000)
    rather than the codec fixing them; description: one line for tables and docs; user_weights: its codec
    takes the flowgraph's `codecs.weights_dir` and `codecs.device` (neural codecs with user-supplied models);
    needs_weights: the folders of codecs/generative/weights.py it cannot run without (see missing_weights);
    weights_when_present: folders it needs only once the weights directory holds the first of them (the user
    chose the pretrained path over the offline default; a half-copied folder is then named, not ignored);
    trained_files: the files of the package's codecs/weights/ its default codec loads (the project's trained
    models): its row of the mode table records their digests, so a row measured with other weights is found.
    """

    name: str
    codec: str
    carrier: Literal["bits", "analog"]
    table_key: str
    description: str
    rate_adaptive: bool = False
    user_weights: bool = False
    needs_weights: tuple[str, ...] = ()
    weights_when_present: tuple[str, ...] = ()
    trained_files: tuple[str, ...] = ()

    def opted_in(self, weights_dir: str | Path | None) -> bool:
        """Whether `weights_dir` holds the first of `weights_when_present`: the user's models replace the
        offline default (and its trained_files)."""
        opted = self.weights_when_present
        return bool(opted and weights_dir and (Path(weights_dir).expanduser() / opted[0]).is_dir())

    def weights_digests(self, folder: str | Path | None = None) -> dict[str, str | None]:
        """file name -> digest (:func:`file_digest`) of each of `trained_files` in `folder` (default: the
        package's codecs/weights/, where the mode table lies)."""
        folder = Path(folder) if folder is not None else MODE_TABLE_PATH.parent
        return {name: file_digest(folder / name) for name in self.trained_files}

    def missing_weights(self, weights_dir: str | Path | None) -> str | None:
        """Why this mode cannot run with `weights_dir` (the files to provide), or None when it can."""
        needs = self.needs_weights + (self.weights_when_present if self.opted_in(weights_dir) else ())
        if not needs:
            return None
        from sagin_hil.codecs.generative.weights import GenerativeWeightsError, require

        reasons = []
        for component in needs:
            try:
                require(weights_dir, component, mode=self.name)
            except GenerativeWeightsError as exc:
                reasons.append(str(exc))
        return "\n".join(reasons) or None

    @property
    def analog(self) -> bool:
        return self.carrier == "analog"

    def budget(self, bits_per_pixel: float, n_pixels: int, snr_db: float | None = None) -> Budget:
        """The codec budget of an allocation: JPEG 2000 gets bits_per_pixel x pixels (at least
        MIN_MODE1_BITS), an analog codec the SNR it should expect, a fixed-size codec nothing."""
        if self.analog:
            return Budget(snr_db=snr_db)
        if self.rate_adaptive:
            return Budget(bits=max(int(bits_per_pixel * n_pixels), MIN_MODE1_BITS))
        return Budget()

    def row(self, table: dict[str, Any]) -> dict[str, Any]:
        """This mode's row of the mode table; KeyError names the command that measures it."""
        try:
            return table["modes"][self.table_key]
        except KeyError:
            raise KeyError(f"the mode table has no row for {self.name}; measure it with `sagin-hil train modes`") from None

    def bits_per_pixel(self, table: dict[str, Any], bits_per_pixel: float | None = None) -> float:
        """Digital bits per pixel it sends (a rate-adaptive mode: the one allocated); 0 for analog modes."""
        if self.analog:
            return 0.0
        if self.rate_adaptive:
            if bits_per_pixel is None:
                raise ValueError(f"{self.name} is rate adaptive: give bits_per_pixel")
            return float(bits_per_pixel)
        return self.row(table)["bits"] / table["image_size"] ** 2

    def bandwidth_ratio(self) -> float:
        """Channel uses per source value of an analog mode (its codec's ratio); 0 for digital modes."""
        return float(Fraction(self.codec.split("-", 1)[1])) if self.analog else 0.0

    def symbols(self, n_pixels: int) -> int:
        """Analog channel uses for a colour image of n_pixels (ratio x 3 values per pixel)."""
        return int(math.ceil(self.bandwidth_ratio() * 3 * n_pixels))

    def psnr_db(self, table: dict[str, Any], bits_per_pixel: float | None = None, snr_db: float | None = None) -> float:
        """Predicted mean PSNR: JPEG 2000 from its rate-quality curve at bits_per_pixel, a fixed-size mode its
        measured value, an analog mode its PSNR-vs-SNR curve at the end-to-end snr_db (clamped to the grid)."""
        if self.rate_adaptive:
            return float(RateQualityTable.coerce(table["j2k_rate_quality"]).psnr_at(bits_per_pixel))
        row = self.row(table)
        if self.analog:
            if snr_db is None:
                raise ValueError(f"{self.name} is analog: its quality needs the end-to-end snr_db")
            return float(np.interp(snr_db, row["snr_db"], row["psnr_db"]))
        return float(row["psnr_db"])

    def compute_time_s(self, table: dict[str, Any], bits_per_pixel: float | None = None,
                       stages: tuple[str, ...] = ("encode", "decode")) -> float:
        """Measured time of `stages` ("encode", "decode") on the table's machine (JPEG 2000 interpolated in
        log-bpp at bits_per_pixel)."""
        if self.rate_adaptive and bits_per_pixel is not None:
            c = table["j2k_rate_quality"]
            t = sum(np.asarray(c[f"{s}_time_s"]) for s in stages)
            return float(np.interp(np.log(max(bits_per_pixel, 1e-12)), np.log(c["bpp"]), t))
        row = self.row(table)
        if set(stages) == {"encode", "decode"}:
            return float(row["compute_time_s"])
        return float(sum(row[f"{s}_time_s"] for s in stages))


# Modes 3_x run on the user's Stable Diffusion (and BLIP for the caption) once stable-diffusion/ is there.
LATENT_PATH_WEIGHTS = ("stable-diffusion", "blip")

MODES: Registry[ModeSpec] = Registry("mode", {s.name: s for s in (
    ModeSpec("mode1", "jpeg2000", "bits", "1", "JPEG 2000 codestream + LDPC, rate set by the controller",
             rate_adaptive=True),
    ModeSpec("mode1-lossless", "jpeg2000-lossless", "bits", "1-lossless", "lossless JPEG 2000 + LDPC: the whole "
             "image, no rate adaptation ([P000]'s Mode 1 read literally)"),
    ModeSpec("mode2", "caption-t2i", "bits", "2", "BLIP caption + LDPC, Stable Diffusion text-to-image at the "
             "receiver (user weights)", user_weights=True, needs_weights=("blip", "stable-diffusion")),
    ModeSpec("mode3_1", "gen-3_1", "bits", "3_1", "VQ latent indices + LDPC, diffusion decoder, coarsest grid",
             user_weights=True, weights_when_present=LATENT_PATH_WEIGHTS,
             trained_files=("vq-3_1.safetensors", "gen-3_1.safetensors")),
    ModeSpec("mode3_2", "gen-3_2", "bits", "3_2", "VQ latent indices + LDPC, diffusion decoder, middle grid",
             user_weights=True, weights_when_present=LATENT_PATH_WEIGHTS,
             trained_files=("vq-3_2.safetensors", "gen-3_2.safetensors")),
    ModeSpec("mode3_3", "gen-3_3", "bits", "3_3", "VQ latent indices + LDPC, diffusion decoder, finest grid",
             user_weights=True, weights_when_present=LATENT_PATH_WEIGHTS,
             trained_files=("vq-3_3.safetensors", "gen-3_3.safetensors")),
    ModeSpec("jscc-1/12", "jscc-1/12", "analog", "jscc-1/12", "deep JSCC, 1 channel use per 12 source values",
             trained_files=("jscc-1_12.safetensors",)),
    ModeSpec("jscc-1/6", "jscc-1/6", "analog", "jscc-1/6", "deep JSCC, 1 channel use per 6 source values",
             trained_files=("jscc-1_6.safetensors",)),
    ModeSpec("spiff", "spiff", "bits", "spiff", "SPIFF (paper 003): person box + sampled patches in JPEG 2000, "
             "the rest inpainted; fixed configuration beta 0.25, p(0) 0.2, 1 bpp kept", user_weights=True),
)})


def available_modes() -> list[str]:
    """Every registered mode name."""
    return MODES.names()


def get_mode(name: str) -> ModeSpec:
    """The ModeSpec registered as `name`; an unknown name is named with the registered ones."""
    return MODES.get(name)


def load_mode_table(path: str | Path | None = None) -> dict[str, Any]:
    """The stored mode table; regenerate it with `sagin-hil train modes`. Rows measured with other trained
    weights than those beside the table now are named in a warning (:func:`warn_if_stale`)."""
    p = Path(path) if path is not None else MODE_TABLE_PATH
    if not p.exists():
        raise FileNotFoundError(f"no mode table at {p}; create it with `sagin-hil train modes`")
    table = json.loads(p.read_text())
    stale = stale_modes(table)  # its rows describe the package's codecs, wherever the table was copied
    warn_if_stale(f"the mode table {p}", stale, "sagin-hil train modes --modes " + ",".join(stale))
    return table


def file_digest(path: str | Path) -> str | None:
    """The first 16 hex digits of the file's SHA-256 (None if it does not exist): what a measurement made
    from trained weights records, so that new weights show which measurements are stale."""
    p = Path(path)
    if not p.is_file():
        return None
    st = p.stat()
    return _digest(str(p.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:  # keyed on size and mtime: a rewritten file is read again
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def stale_modes(table: dict[str, Any], folder: str | Path | None = None) -> list[str]:
    """Modes whose row of `table` records weight digests other than those of the files in `folder` now
    (default: the package's codecs/weights/). Rows without digests (measured before they were recorded)
    are not judged."""
    rows = table.get("modes", {})
    return [spec.name for spec in (MODES.get(n) for n in MODES.names())
            if "weights_sha256" in rows.get(spec.table_key, {})
            and rows[spec.table_key]["weights_sha256"] != spec.weights_digests(folder)]


_warned: set[tuple[str, ...]] = set()


def warn_if_stale(what: str, stale: list[str], fix: str) -> None:
    """Warn (once per process for each `what` and set) that `what` was measured with other weights for
    `stale` than the current ones, naming the command that measures it again."""
    key = (what, *stale)
    if stale and key not in _warned:
        _warned.add(key)
        warnings.warn(f"{what} was measured with other trained weights for {', '.join(stale)} than the ones "
                      f"installed now, so its predictions describe the old models; measure again: {fix}",
                      stacklevel=3)


def remeasure_hint(mode_names: list[str]) -> str:
    """What to run once new trained weights of `mode_names` are in the package's codecs/weights/ ("" if
    none of them is a registered mode): the commands that measure their rows (and JCRRA's surface) again."""
    names = [n for n in mode_names if n in MODES]
    if not names:
        return ""
    cmd = f"sagin-hil train modes --modes {','.join(names)}"
    if any(MODES.get(n).analog for n in names):
        cmd += " && sagin-hil calibrate jscc-surface"
    return f"The mode table's rows for {', '.join(names)} describe the previous weights; measure them again: {cmd}"


def j2k_rate_quality(path: str | Path | None = None) -> dict[str, Any]:
    """The stored JPEG 2000 rate-quality curve (bpp grid, mean PSNR / SSIM and codec times on the held-out
    images), measured when the mode table was last built."""
    return load_mode_table(path)["j2k_rate_quality"]


def j2k_bits_for_psnr(psnr_floor_db: float, n_pixels: int, table: dict[str, Any] | None = None) -> int:
    """Smallest JPEG 2000 budget (bits) whose measured mean PSNR reaches `psnr_floor_db`, interpolated in
    log-bpp on the stored rate-quality curve; the top of the grid when the floor is above it."""
    curve = RateQualityTable.coerce((table or load_mode_table())["j2k_rate_quality"])
    bpp = curve.bpp_for(psnr_floor_db)
    return int(np.ceil((curve.bpp[-1] if math.isinf(bpp) else bpp) * n_pixels))
