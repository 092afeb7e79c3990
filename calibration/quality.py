"""Codec quality measured over a channel: the mode table the controllers and the link abstraction read.

For every registered mode (codecs.modes.MODES) on the held-out images of this package: bits, mean PSNR /
SSIM and median encode + decode time; for analog (deep JSCC) modes the PSNR / SSIM curve over AWGN SNR
(the encoder and decoder told the true SNR); and the JPEG 2000 rate-quality curve with its codec times per
budget. `sagin-hil train modes` runs `build_mode_table` and stores codecs/weights/mode_table.json.
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

import numpy as np

from sagin_hil.codecs.base import Budget
from sagin_hil.codecs.modes import MODE_TABLE_PATH, MODES, ModeSpec
from sagin_hil.codecs.profile import PROFILE_BPP_GRID, build_image_profiles
from sagin_hil.phy.theory import awgn

__all__ = ["BPP_GRID", "JSCC_SNR_GRID_DB", "build_mode_table", "measure_jscc", "measure_j2k_rate_quality"]

JSCC_SNR_GRID_DB = (-4.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0)
BPP_GRID = PROFILE_BPP_GRID  # the per-image profiles share the mean curve's grid
MODE1_BPP = 1.0  # the Mode 1 operating point reported in the mode table (the controller may pick any rate)


def _eval_images(n: int, size: int) -> list[tuple[str, np.ndarray]]:
    from sagin_hil.codecs.images import load_images

    return load_images(n=n, size=size, split="eval")


def _measure(codec: Any, imgs: list[tuple[str, np.ndarray]], budget: Budget | None,
             channel: Any = None) -> dict[str, Any]:
    """Encode, (pass analog symbols through `channel`), decode and score each image."""
    from sagin_hil.codecs.metrics import psnr, ssim

    bits, ps, ss, te, td, n_sym = [], [], [], [], [], 0
    for _, img in imgs:
        pay = codec.encode(img, budget)
        t0 = time.perf_counter()
        if pay.symbols is not None:
            n_sym = pay.symbols.size
            rec = codec.decode(pay.data, symbols=channel(pay.symbols), snr_db=budget.snr_db)
        else:
            rec = codec.decode(pay.data)
        td.append(time.perf_counter() - t0)
        te.append(pay.encode_time_s)
        bits.append(pay.n_bits)
        ps.append(psnr(img, rec))
        ss.append(ssim(img, rec))
    return {"bits": int(np.median(bits)), "symbols": int(n_sym), "psnr_db": float(np.mean(ps)),
            "ssim": float(np.mean(ss)), "encode_time_s": float(np.median(te)), "decode_time_s": float(np.median(td))}


def measure_j2k_rate_quality(n_images: int = 8, size: int = 256, bpp_grid: tuple[float, ...] = BPP_GRID) -> dict[str, Any]:
    """JPEG 2000 mean PSNR / SSIM and median codec times at each bits-per-pixel budget on held-out images.

    Output: {"bpp", "psnr_db", "ssim", "encode_time_s", "decode_time_s"} (lists over the grid), "images", "size".
    The payload header is counted in the bits.
    """
    from sagin_hil.codecs.registry import get_codec

    codec, imgs = get_codec("jpeg2000"), _eval_images(n_images, size)
    keys = ("psnr_db", "ssim", "encode_time_s", "decode_time_s")
    rows: dict[str, list[float]] = {"bpp": [], **{k: [] for k in keys}}
    for bpp in bpp_grid:
        m = _measure(codec, imgs, Budget(bits=int(bpp * size * size)))
        rows["bpp"].append(bpp)
        for k in keys:
            rows[k].append(m[k])
    return {**rows, "images": [n for n, _ in imgs], "size": size}


def measure_jscc(codec_name: str, imgs: list[tuple[str, np.ndarray]], snr_grid_db: tuple[float, ...] = JSCC_SNR_GRID_DB,
                 seed: int = 0) -> dict[str, Any]:
    """Mean PSNR / SSIM of a deep JSCC codec over complex AWGN at each SNR (encoder and decoder told the true
    SNR), its channel symbols per image and its median encode / decode times."""
    from sagin_hil.codecs.registry import get_codec

    codec, rng = get_codec(codec_name), np.random.default_rng(seed)
    per_snr = [_measure(codec, imgs, Budget(snr_db=snr), lambda s, snr=snr: awgn(s, snr, rng)) for snr in snr_grid_db]
    te = float(np.median([m["encode_time_s"] for m in per_snr]))
    td = float(np.median([m["decode_time_s"] for m in per_snr]))
    return {
        "codec": codec_name, "ratio": codec_name.split("-", 1)[1], "symbols": per_snr[0]["symbols"],
        "snr_db": list(snr_grid_db), "psnr_db": [m["psnr_db"] for m in per_snr], "ssim": [m["ssim"] for m in per_snr],
        "encode_time_s": te, "decode_time_s": td, "compute_time_s": te + td,
    }


def _measure_mode(spec: ModeSpec, imgs: list[tuple[str, np.ndarray]], size: int) -> dict[str, Any]:
    from sagin_hil.codecs.registry import get_codec

    if spec.analog:
        return measure_jscc(spec.codec, imgs)
    budget = spec.budget(MODE1_BPP, size * size)
    m = _measure(get_codec(spec.codec), imgs, budget)
    row = {"codec": spec.codec, **{k: v for k, v in m.items() if k != "symbols"},
           "compute_time_s": m["encode_time_s"] + m["decode_time_s"]}
    return {**row, "bpp": MODE1_BPP} if spec.rate_adaptive else row


def build_mode_table(n_images: int = 8, size: int = 256, write: bool = True, vq: bool = True,
                     jscc: bool = True) -> dict[str, Any]:
    """Measure the mode table (every registered mode) and the JPEG 2000 rate-quality curve.

    Modes 3_x need the trained VQ weights (`sagin-hil train vq`), JSCC modes the JSCC weights (`sagin-hil
    train jscc`); vq=False / jscc=False leave those out. Writes codecs/weights/mode_table.json when `write`,
    and beside it the same images' per-image quality profiles (codecs/profile.py).
    """
    imgs = _eval_images(n_images, size)
    modes = {}
    for name in MODES:
        spec = MODES.get(name)
        if (spec.codec.startswith("vq") and not vq) or (spec.analog and not jscc):
            continue
        modes[spec.table_key] = _measure_mode(spec, imgs, size)
    table = {
        "image_size": size, "images": [n for n, _ in imgs], "machine": platform.processor() or platform.machine(),
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modes": modes, "j2k_rate_quality": measure_j2k_rate_quality(n_images, size),
    }
    if write:
        MODE_TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
        MODE_TABLE_PATH.write_text(json.dumps(table, indent=1))
        build_image_profiles(n_images, size, write=True)
    return table
