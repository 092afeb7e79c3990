"""SPIFF's row of the mode table (codecs/weights/mode_table.json): its mean bits, quality and measured compute
time on the table's held-out images, in the mode's fixed configuration (codecs/modes.py), written by a
read-modify-write that touches no other row."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["measure_mode_row", "write_mode_row"]


def measure_mode_row(images: list[tuple[str, np.ndarray]], codec: Any = None) -> dict[str, Any]:
    """Mean bits, PSNR, SSIM, MS-SSIM, encode / decode / compute seconds of SPIFF over `images`."""
    from sagin_hil.codecs import get_codec
    from sagin_hil.codecs.metrics import ms_ssim, psnr, ssim

    codec = codec or get_codec("spiff")
    rows = []
    for _, img in images:
        pay = codec.encode(img)
        t = time.perf_counter()
        out = codec.decode(pay.data)
        dec = time.perf_counter() - t
        rows.append((pay.n_bits, psnr(img, out), ssim(img, out), ms_ssim(img, out), pay.encode_time_s, dec))
    a = np.asarray(rows, float).mean(axis=0)
    return {"codec": "spiff", "bits": int(round(a[0])), "psnr_db": float(a[1]), "ssim": float(a[2]), "ms_ssim": float(a[3]),
            "encode_time_s": float(a[4]), "decode_time_s": float(a[5]), "compute_time_s": float(a[4] + a[5]),
            "config": {"beta": codec.config.beta, "keep": list(codec.config.keep), "kept_bpp": codec.config.kept_bpp,
                       "segmenter": type(codec.segmenter).__name__, "inpainter": type(codec.inpainter).__name__}}


def write_mode_row(path: str | Path | None = None) -> dict[str, Any]:
    """Measure SPIFF on the mode table's own images and size, and set only its row ("spiff") in the table."""
    from sagin_hil.codecs.images import load_images
    from sagin_hil.codecs.modes import MODE_TABLE_PATH, get_mode

    p = Path(path) if path is not None else MODE_TABLE_PATH
    table = json.loads(p.read_text())
    imgs = [im for im in load_images(n=len(table["images"]), size=table["image_size"], split="eval")
            if im[0] in table["images"]]
    row = measure_mode_row(imgs)
    table["modes"][get_mode("spiff").table_key] = row
    p.write_text(json.dumps(table, indent=1))  # the format the table is written in
    return row
