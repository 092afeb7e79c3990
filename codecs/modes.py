"""Transmission modes and their measured tables ([P000] Sec. III-A, docs/references.md).

Mode 1 = JPEG 2000 (+ LDPC on the link); Modes 3_1..3_3 = VQ semantic features at three latent resolutions.
(Mode 2, caption only, comes with the generative codecs.) Deep JSCC ("jscc-1/12", "jscc-1/6") is an analog
mode: its quality depends on the channel SNR, so its entry holds a PSNR/SSIM curve over AWGN SNR. Every
figure in the table is measured on the held-out images of this package on this machine by
:func:`build_mode_table`, stored in codecs/weights/mode_table.json and read back by :func:`load_mode_table`;
nothing here is assumed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MODES", "MODE_TABLE_PATH", "j2k_rate_quality", "measure_j2k_rate_quality", "build_mode_table", "load_mode_table",
    "j2k_bits_for_psnr", "measure_jscc", "JSCC_MODES",
]

MODE_TABLE_PATH = Path(__file__).parent / "weights" / "mode_table.json"
MODES: dict[str, dict[str, str]] = {
    "1": {"codec": "jpeg2000", "carrier": "bits (LDPC)", "what": "JPEG 2000 codestream, rate set by the controller"},
    "3_1": {"codec": "vq-3_1", "carrier": "bits (LDPC)", "what": "VQ latent indices, coarsest grid"},
    "3_2": {"codec": "vq-3_2", "carrier": "bits (LDPC)", "what": "VQ latent indices, middle grid"},
    "3_3": {"codec": "vq-3_3", "carrier": "bits (LDPC)", "what": "VQ latent indices, finest grid"},
    "jscc-1/12": {"codec": "jscc-1/12", "carrier": "analog symbols", "what": "deep JSCC, 1 channel use per 12 values"},
    "jscc-1/6": {"codec": "jscc-1/6", "carrier": "analog symbols", "what": "deep JSCC, 1 channel use per 6 values"},
}
JSCC_MODES = ("jscc-1/12", "jscc-1/6")
JSCC_SNR_GRID_DB = (-4.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0)
BPP_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
MODE1_BPP = 1.0  # the Mode 1 operating point reported in the mode table (the controller may pick any rate)


def _eval_images(n: int, size: int) -> list[tuple[str, np.ndarray]]:
    from sagin_hil.codecs.images import load_images

    return load_images(n=n, size=size, split="eval")


def j2k_rate_quality(path: str | Path | None = None) -> dict[str, Any]:
    """The stored JPEG 2000 rate-quality curve (bpp grid, mean PSNR / SSIM on the held-out images), as
    measured by :func:`measure_j2k_rate_quality` when the mode table was last built."""
    return load_mode_table(path)["j2k_rate_quality"]


def measure_j2k_rate_quality(n_images: int = 8, size: int = 256, bpp_grid: tuple[float, ...] = BPP_GRID) -> dict[str, Any]:
    """Measure JPEG 2000 mean PSNR / SSIM (and codec time) at each bits-per-pixel budget on held-out images.

    Output
    ------
    dict with "bpp", "psnr_db", "ssim", "encode_time_s", "decode_time_s" (lists over the grid), "images", "size".
    The payload header is counted in the bits.
    """
    from sagin_hil.codecs.jpeg2000 import Jpeg2000Codec
    from sagin_hil.codecs.metrics import psnr, ssim

    codec = Jpeg2000Codec()
    imgs = _eval_images(n_images, size)
    rows: dict[str, list[float]] = {"bpp": [], "psnr_db": [], "ssim": [], "encode_time_s": [], "decode_time_s": []}
    for bpp in bpp_grid:
        ps, ss, te, td = [], [], [], []
        for _, img in imgs:
            pay = codec.encode(img, budget_bits=int(bpp * size * size))
            t0 = time.perf_counter()
            rec = codec.decode(pay.data)
            td.append(time.perf_counter() - t0)
            te.append(pay.encode_time_s)
            ps.append(psnr(img, rec))
            ss.append(ssim(img, rec))
        rows["bpp"].append(bpp)
        rows["psnr_db"].append(float(np.mean(ps)))
        rows["ssim"].append(float(np.mean(ss)))
        rows["encode_time_s"].append(float(np.median(te)))
        rows["decode_time_s"].append(float(np.median(td)))
    return {**rows, "images": [n for n, _ in imgs], "size": size}


def j2k_bits_for_psnr(psnr_floor_db: float, n_pixels: int, table: dict[str, Any] | None = None) -> int:
    """Smallest JPEG 2000 budget (bits) whose measured mean PSNR reaches `psnr_floor_db`, interpolated in
    log-bpp on the stored rate-quality curve; the top of the grid when the floor is above it."""
    curve = (table or load_mode_table())["j2k_rate_quality"]
    bpp, q = np.asarray(curve["bpp"]), np.maximum.accumulate(np.asarray(curve["psnr_db"]))
    if psnr_floor_db <= q[0]:
        return int(np.ceil(bpp[0] * n_pixels))
    if psnr_floor_db >= q[-1]:
        return int(np.ceil(bpp[-1] * n_pixels))
    log_bpp = np.interp(psnr_floor_db, q, np.log(bpp))
    return int(np.ceil(np.exp(log_bpp) * n_pixels))


def _measure_mode(codec_name: str, imgs: list[tuple[str, np.ndarray]], **budget: Any) -> dict[str, Any]:
    from sagin_hil.codecs.metrics import psnr, ssim
    from sagin_hil.codecs.registry import get_codec

    codec = get_codec(codec_name)
    bits, ps, ss, te, td = [], [], [], [], []
    for _, img in imgs:
        pay = codec.encode(img, **budget)
        t0 = time.perf_counter()
        rec = codec.decode(pay.data)
        td.append(time.perf_counter() - t0)
        te.append(pay.encode_time_s)
        bits.append(pay.n_bits)
        ps.append(psnr(img, rec))
        ss.append(ssim(img, rec))
    return {
        "codec": codec_name, "bits": int(np.median(bits)), "psnr_db": float(np.mean(ps)), "ssim": float(np.mean(ss)),
        "encode_time_s": float(np.median(te)), "decode_time_s": float(np.median(td)),
        "compute_time_s": float(np.median(te) + np.median(td)),
    }


def measure_jscc(codec_name: str, imgs: list[tuple[str, np.ndarray]], snr_grid_db: tuple[float, ...] = JSCC_SNR_GRID_DB,
                 seed: int = 0) -> dict[str, Any]:
    """Mean PSNR / SSIM of a deep JSCC codec over complex AWGN at each SNR (the encoder and decoder told the
    true SNR), its channel symbols per image and its median encode / decode times."""
    from sagin_hil.codecs.metrics import psnr, ssim
    from sagin_hil.codecs.registry import get_codec

    codec = get_codec(codec_name)
    rng = np.random.default_rng(seed)
    ps, ss, te, td, n_sym = [], [], [], [], 0
    for snr in snr_grid_db:
        p_snr, s_snr = [], []
        for _, img in imgs:
            pay = codec.encode(img, snr_db=snr)
            n_sym = pay.symbols.size
            noise = (rng.normal(size=n_sym) + 1j * rng.normal(size=n_sym)) * np.sqrt(10 ** (-snr / 10) / 2)
            t0 = time.perf_counter()
            rec = codec.decode(pay.data, symbols=pay.symbols + noise, snr_db=snr)
            td.append(time.perf_counter() - t0)
            te.append(pay.encode_time_s)
            p_snr.append(psnr(img, rec))
            s_snr.append(ssim(img, rec))
        ps.append(float(np.mean(p_snr)))
        ss.append(float(np.mean(s_snr)))
    return {
        "codec": codec_name, "ratio": codec_name.split("-", 1)[1], "symbols": int(n_sym),
        "snr_db": list(snr_grid_db), "psnr_db": ps, "ssim": ss,
        "encode_time_s": float(np.median(te)), "decode_time_s": float(np.median(td)),
        "compute_time_s": float(np.median(te) + np.median(td)),
    }


def build_mode_table(n_images: int = 8, size: int = 256, write: bool = True, vq: bool = True,
                     jscc: bool = True) -> dict[str, Any]:
    """Measure the mode table (bits, PSNR, SSIM, compute time per mode; PSNR/SSIM vs SNR for deep JSCC)
    and the J2K rate-quality curve.

    Modes 3_x need the trained VQ weights (`sagin-hil train vq`), JSCC modes the JSCC weights (`sagin-hil
    train jscc`); with vq=False / jscc=False those are not measured. Writes codecs/weights/mode_table.json
    when `write`.
    """
    import platform

    imgs = _eval_images(n_images, size)
    modes = {"1": {**_measure_mode("jpeg2000", imgs, budget_bits=int(MODE1_BPP * size * size)), "bpp": MODE1_BPP}}
    if vq:
        for m in ("3_1", "3_2", "3_3"):
            modes[m] = _measure_mode(f"vq-{m}", imgs)
    if jscc:
        for m in JSCC_MODES:
            modes[m] = measure_jscc(m, imgs)
    table = {
        "image_size": size, "images": [n for n, _ in imgs], "machine": platform.processor() or platform.machine(),
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modes": modes, "j2k_rate_quality": measure_j2k_rate_quality(n_images, size),
    }
    if write:
        MODE_TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
        MODE_TABLE_PATH.write_text(json.dumps(table, indent=1))
    return table


def load_mode_table(path: str | Path | None = None) -> dict[str, Any]:
    """The stored mode table; regenerate it with :func:`build_mode_table` (or `sagin-hil train modes`)."""
    p = Path(path) if path is not None else MODE_TABLE_PATH
    if not p.exists():
        raise FileNotFoundError(f"no mode table at {p}; create it with `sagin-hil train modes`")
    return json.loads(p.read_text())
