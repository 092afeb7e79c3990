"""The SSIM(CR, SNR) surface of deep JSCC: measured on held-out images, fitted, stored, inverted.

JCRRA (controllers/jcrra.py) needs, per user, the least channel SNR at which a compression ratio (bandwidth
ratio k/n, channel uses per source value) meets that user's SSIM requirement. [P002] fits such a surface to its
JSCC's measured SSIM; its Eq. 7 (the functional form) did not survive, only the coefficients of its Table I
(kept here as `PAPER_002_TABLE_I`). We fit our own form to our own codec:

    SSIM(r, s) = f + (h(r) - f) / (1 + exp(-(s - m(r)) / w))
    h(r) = h0 + h1 ln(r / r_ref),   m(r) = m0 + m1 ln(r / r_ref),   r_ref = 1/12

s is the SNR (Es/N0) in dB. The curve in s is a logistic rising from the floor f (SSIM with nothing heard)
to the ceiling h(r) (the codec's clean-channel quality at ratio r) around the midpoint m(r) with width w. It
rises monotonically in s, so it inverts in closed form (`snr_db_for`). With two trained ratios the ln r terms
are fixed by two ratios only: between them the surface interpolates, outside it extrapolates (flagged in
`ratio_range`).

`measure_jscc_ssim` sends 64 x 64 tiles of the held-out images ("eval" split: never trained on, the size of
a EuroSAT tile) through each JSCC codec of the registry and complex AWGN at each SNR, several noise seeds;
`fit_surface` fits the six parameters by least squares; `sagin-hil calibrate jscc-surface` does both and
writes codecs/weights/jscc_ssim_surface.json with the fit error (RMSE, max) and the measured points, the same
form fitted to the 10th percentile over tiles (`load_surface(quantile=0.1)`: the SSIM 90 % of images reach,
for planning each user's own requirement rather than the mean), and beside
them the greedy-JPEG baseline's rate-SSIM table of the same tiles (`measure_jpeg_ssim`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.codecs.modes import MODE_TABLE_PATH, file_digest, warn_if_stale

__all__ = ["SsimSurface", "PAPER_002_TABLE_I", "SURFACE_PATH", "measure_jscc_ssim", "fit_surface", "load_surface",
           "eval_tiles", "measure_jpeg_ssim", "jpeg_bits_for", "load_jpeg_table"]

SURFACE_PATH = Path(__file__).resolve().parent.parent / "codecs" / "weights" / "jscc_ssim_surface.json"
R_REF = 1.0 / 12.0
FORM = "logistic-in-snr-db, ceiling and midpoint linear in ln(ratio)"

# [P002] Table I, row by row as printed (rows 1..6, five coefficients each; row 1 has a sixth). The row and
# column labels and the formula they enter (Eq. 7) were lost, so these numbers cannot be evaluated; they are
# kept for the day the form is known, and for comparison of magnitudes.
PAPER_002_TABLE_I: tuple[tuple[float, ...], ...] = (
    (126.216875, -15.5512520, -1.740186, 19.306749, -0.308751, 30.429844),
    (59.985122, -6.605492, -0.996148, 1.831855, 0.028218),
    (153.050377, 4.196036, -0.213359, -7.217142, -0.701829),
    (-206.696783, 9.487473, -1.375091, 3.405617, -0.549287),
    (-38.0243540, 6.00383, 0.663762, 5.409884, -0.339842),
    (-15.4042140, 6.49103, 4.730506, -1.064734, 0.0851),
)


@dataclass(frozen=True)
class SsimSurface:
    """Expected SSIM of a JSCC codec as a function of its ratio r and the channel SNR s (dB); see the module.

    params: (f, h0, h1, m0, m1, w); ratio_range, snr_range_db: where it was measured; fit: error statistics
    and how it was measured (free-form, stored with it).
    """

    params: tuple[float, float, float, float, float, float]
    ratio_range: tuple[float, float] = (1 / 12, 1 / 6)
    snr_range_db: tuple[float, float] = (-2.0, 20.0)
    fit: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = tuple(float(v) for v in self.params)
        if len(p) != 6 or not all(math.isfinite(v) for v in p) or p[5] <= 0:
            raise ValueError(f"SsimSurface.params = {self.params!r}: give six finite numbers (f, h0, h1, m0, m1, w) "
                             "with width w > 0")
        object.__setattr__(self, "params", p)

    def _check_ratio(self, ratio: Any) -> np.ndarray:
        r = np.asarray(ratio, float)
        if np.any(~np.isfinite(r)) or np.any(r <= 0) or np.any(r > 1):
            raise ValueError(f"compression ratio {ratio!r} must be in (0, 1] channel uses per source value, e.g. 1/12")
        return r

    def ceiling(self, ratio: Any) -> np.ndarray:
        """h(r): the SSIM the surface approaches on a clean channel."""
        f, h0, h1, *_ = self.params
        return h0 + h1 * np.log(self._check_ratio(ratio) / R_REF)

    def ssim(self, ratio: Any, snr_db: Any) -> np.ndarray:
        """Expected SSIM at ratio r and SNR s (dB), broadcast over arrays."""
        f, h0, h1, m0, m1, w = self.params
        lr = np.log(self._check_ratio(ratio) / R_REF)
        z = (np.asarray(snr_db, float) - (m0 + m1 * lr)) / w
        return f + (h0 + h1 * lr - f) / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def snr_db_for(self, ratio: Any, ssim_min: Any) -> np.ndarray:
        """The least SNR (dB) at which ratio r reaches `ssim_min`: -inf when even no signal does (at or below
        the floor), +inf when the ratio cannot reach it at any SNR (at or above its ceiling)."""
        f, h0, h1, m0, m1, w = self.params
        lr = np.log(self._check_ratio(ratio) / R_REF)
        q = np.asarray(ssim_min, float)
        h = h0 + h1 * lr
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (m0 + m1 * lr) - w * np.log((h - f) / (q - f) - 1.0)
        s = np.where(q <= f, -np.inf, s)
        return np.where(q >= h, np.inf, s)

    def to_dict(self) -> dict[str, Any]:
        f, h0, h1, m0, m1, w = self.params
        return {"form": FORM, "formula": "SSIM = f + (h0 + h1 ln(r/r_ref) - f) / (1 + exp(-(snr_db - m0 - m1 "
                "ln(r/r_ref)) / w)), r_ref = 1/12", "r_ref": R_REF,
                "params": {"f": f, "h0": h0, "h1": h1, "m0": m0, "m1": m1, "w": w},
                "ratio_range": list(self.ratio_range), "snr_range_db": list(self.snr_range_db), "fit": self.fit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SsimSurface:
        try:
            p = data["params"]
            params = tuple(float(p[k]) for k in ("f", "h0", "h1", "m0", "m1", "w"))
        except (KeyError, TypeError, ValueError):
            raise ValueError("an SSIM surface needs 'params' with f, h0, h1, m0, m1, w (as written by "
                             "`sagin-hil calibrate jscc-surface`)") from None
        return cls(params, tuple(data.get("ratio_range", (1 / 12, 1 / 6))),  # type: ignore[arg-type]
                   tuple(data.get("snr_range_db", (-2.0, 20.0))), dict(data.get("fit", {})))  # type: ignore[arg-type]


def load_surface(path: str | Path | None = None, quantile: float | None = None) -> SsimSurface:
    """The stored surface (default codecs/weights/jscc_ssim_surface.json): the mean SSIM's, or with
    quantile = 0.1 the one fitted to the SSIM 90 % of images reach; a missing file names its command."""
    p = Path(path) if path is not None else SURFACE_PATH
    if not p.exists():
        raise FileNotFoundError(f"no SSIM surface at {p}; measure and fit it with `sagin-hil calibrate jscc-surface`")
    data = json.loads(p.read_text())
    _warn_if_stale(p, data)
    if quantile is None:
        return SsimSurface.from_dict(data)
    stored = data.get("quantiles", {})
    if f"{quantile:g}" not in stored:
        raise ValueError(f"SSIM quantile {quantile!r} is not stored in {p}; stored: {sorted(stored) or 'none'} "
                         "(`sagin-hil calibrate jscc-surface` fits 0.1)")
    return SsimSurface.from_dict(stored[f"{quantile:g}"])


def _warn_if_stale(path: Path, data: dict[str, Any]) -> None:
    """Warn when the JSCC weights the surface was measured with were replaced (surfaces measured before
    2026-12-03 record none and are not judged)."""
    weights = data.get("fit", {}).get("measured", {}).get("weights")
    if not weights:
        return
    folder = Path(weights["dir"]) if weights.get("dir") else MODE_TABLE_PATH.parent
    stale = [f"jscc-{r}" for r, f in weights["files"].items() if file_digest(folder / f["name"]) != f["sha256"]]
    warn_if_stale(f"the SSIM surface {path}", stale,
                  "sagin-hil calibrate jscc-surface" + (f" --weights-dir {folder}" if weights.get("dir") else ""))


def eval_tiles(n_tiles: int = 64, tile_px: int = 64) -> list[tuple[str, np.ndarray]]:
    """`n_tiles` tiles of tile_px x tile_px cut from the held-out images (each at 4 x tile_px square, 16 tiles
    per image), images taken in turn so a small set still spans all of them."""
    from sagin_hil.codecs.images import image_names, load_images

    names = image_names("eval")
    imgs = load_images(n=len(names), size=4 * tile_px, split="eval")
    tiles = [[(f"{name}[{i},{j}]", img[i * tile_px:(i + 1) * tile_px, j * tile_px:(j + 1) * tile_px])
              for i in range(4) for j in range(4)] for name, img in imgs]
    out = [tiles[k % len(tiles)][k // len(tiles)] for k in range(min(n_tiles, 16 * len(tiles)))]
    return out


def measure_jscc_ssim(ratios: Sequence[str] = ("1/12", "1/6"), snr_db: Sequence[float] = tuple(range(-2, 21, 2)),
                      n_tiles: int = 64, noise_seeds: int = 2, weights_dir: str | Path | None = None,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Mean SSIM of each registered JSCC codec ("jscc-<ratio>") over held-out tiles and noise seeds, per SNR.

    The channel is complex AWGN at Es/N0 = snr_db on the codec's unit-power symbols; the encoder and decoder
    are told that SNR (the transmitter knows its target, the receiver measures it). Returns a JSON-safe map:
    ratio, snr_db, ssim (mean), ssim_ci95 (half-width over tiles, t-free 1.96 sigma / sqrt(n)), ssim_p10 (the
    SSIM 90 % of tiles and draws reach), n_tiles, seeds.
    """
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.base import Budget
    from sagin_hil.codecs.metrics import ssim as ssim_of

    tiles = eval_tiles(n_tiles)
    snr_db = [float(v) for v in snr_db]
    rows: dict[str, list] = {"ratio": [], "snr_db": [], "ssim": [], "ssim_ci95": [], "ssim_p10": []}
    # the weights measured, by file name and digest: load_surface warns once they are replaced
    weights: dict[str, Any] = {"dir": str(Path(weights_dir).resolve()) if weights_dir is not None else None, "files": {}}
    for ratio in ratios:
        kw = {"weights_dir": weights_dir} if weights_dir is not None else {}
        codec = get_codec(f"jscc-{ratio}", **kw)
        if codec.weights_file is not None:
            weights["files"][ratio] = {"name": codec.weights_file.name, "sha256": file_digest(codec.weights_file)}
        for k, s in enumerate(snr_db):
            values = []
            for seed in range(noise_seeds):
                rng = np.random.default_rng([seed, k, int(Fraction(ratio).denominator)])
                for _, tile in tiles:
                    pay = codec.encode(tile, Budget(snr_db=float(s)))
                    n0 = 10 ** (-float(s) / 10)
                    noise = rng.normal(0, math.sqrt(n0 / 2), (2, pay.symbols.size))
                    rx = pay.symbols + (noise[0] + 1j * noise[1]).astype(np.complex64)
                    values.append(ssim_of(tile, codec.decode(pay.data, symbols=rx, snr_db=float(s))))
            v = np.asarray(values)
            rows["ratio"].append(float(Fraction(ratio)))
            rows["snr_db"].append(float(s))
            rows["ssim"].append(float(v.mean()))
            rows["ssim_p10"].append(float(np.quantile(v, 0.1)))
            rows["ssim_ci95"].append(float(1.96 * v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0)
            if progress is not None:
                progress(len(rows["ssim"]), len(ratios) * len(snr_db))
    return {**rows, "n_tiles": len(tiles), "noise_seeds": noise_seeds, "tile_px": 64, "split": "eval",
            "channel": "awgn", "weights": weights}


def fit_surface(measured: dict[str, Any], key: str = "ssim") -> SsimSurface:
    """Least-squares fit of the six parameters to measured (ratio, snr_db, `key`) points (key "ssim": the mean;
    "ssim_p10": the 10th percentile); the fit's RMSE and largest error over the points are stored with it."""
    from scipy.optimize import least_squares

    r = np.asarray(measured["ratio"], float)
    s = np.asarray(measured["snr_db"], float)
    q = np.asarray(measured[key], float)
    if r.size < 6 or r.shape != s.shape or s.shape != q.shape:
        raise ValueError(f"fit_surface needs >= 6 matching (ratio, snr_db, ssim) points; got {r.size}")

    def model(p: np.ndarray) -> np.ndarray:
        return SsimSurface(tuple(p[:5]) + (max(p[5], 1e-3),)).ssim(r, s)  # type: ignore[arg-type]

    lo_i = np.argmin(s)
    x0 = np.array([min(q.min(), q[lo_i]) - 0.02, q.max() + 0.02, 0.05, float(np.median(s)), -2.0, 3.0])
    res = least_squares(lambda p: model(p) - q, x0, bounds=([-1, 0, -1, -40, -40, 0.1], [1, 1.5, 1, 60, 40, 40]))
    err = model(res.x) - q
    fit = {"rmse": float(np.sqrt(np.mean(err**2))), "max_abs_error": float(np.max(np.abs(err))),
           "points": int(q.size), "fitted_to": key, "measured": {k: measured[k] for k in measured}}
    uniq = np.unique(r)
    return SsimSurface(tuple(float(v) for v in res.x), (float(uniq.min()), float(uniq.max())),  # type: ignore[arg-type]
                       (float(s.min()), float(s.max())), fit)


def measure_jpeg_ssim(qualities: Sequence[int] = tuple(range(5, 100, 5)), n_tiles: int = 64) -> dict[str, Any]:
    """The greedy-JPEG baseline's source side: mean SSIM and mean JPEG file size (bits, headers included) of the
    same held-out 64 x 64 tiles at each JPEG quality (Pillow's baseline JPEG, 4:2:0)."""
    import io

    from PIL import Image

    from sagin_hil.codecs.metrics import ssim as ssim_of

    tiles = eval_tiles(n_tiles)
    out: dict[str, list] = {"quality": [], "ssim": [], "bits_per_image": []}
    for q in qualities:
        ssims, bits = [], []
        for _, tile in tiles:
            buf = io.BytesIO()
            Image.fromarray(tile).save(buf, format="JPEG", quality=int(q))
            ssims.append(ssim_of(tile, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))))
            bits.append(8 * len(buf.getvalue()))
        out["quality"].append(int(q))
        out["ssim"].append(float(np.mean(ssims)))
        out["bits_per_image"].append(float(np.mean(bits)))
    return {**out, "n_tiles": len(tiles), "tile_px": 64, "split": "eval"}


def jpeg_bits_for(table: dict[str, Any], ssim_min: float) -> float:
    """Mean JPEG bits per 64 x 64 tile needed for mean SSIM >= ssim_min (linear between measured qualities);
    inf when even the best quality falls short."""
    s = np.maximum.accumulate(np.asarray(table["ssim"], float))
    b = np.asarray(table["bits_per_image"], float)
    if ssim_min > s[-1]:
        return math.inf
    if ssim_min <= s[0]:
        return float(b[0])
    i = int(np.searchsorted(s, ssim_min))
    frac = 0.0 if s[i] == s[i - 1] else (ssim_min - s[i - 1]) / (s[i] - s[i - 1])
    return float(b[i - 1] + frac * (b[i] - b[i - 1]))


def load_jpeg_table(path: str | Path | None = None) -> dict[str, Any]:
    """The JPEG rate-SSIM table stored beside the surface ("jpeg_rate_ssim")."""
    p = Path(path) if path is not None else SURFACE_PATH
    data = json.loads(p.read_text()) if p.exists() else {}
    if "jpeg_rate_ssim" not in data:
        raise FileNotFoundError(f"no JPEG rate-SSIM table in {p}; measure it with `sagin-hil calibrate jscc-surface`")
    return data["jpeg_rate_ssim"]
