"""Codec quality measured over a channel: the mode table the controllers and the link abstraction read.

For every registered mode (codecs.modes.MODES) on the held-out images of this package: bits (a caption's
and the indices' separately where a codec sends them), mean PSNR / SSIM / MS-SSIM and median encode +
decode time; for analog (deep JSCC) modes the same curves over AWGN SNR (the encoder and decoder told the
true SNR); and the JPEG 2000 rate-quality curve with its codec times per budget. `sagin-hil train modes`
runs `build_mode_table` and updates codecs/weights/mode_table.json: the modes it measures get new rows,
the others keep theirs.

Mode 2 needs the user's BLIP and Stable Diffusion. Without them its bits are still exact (a fixed caption
field), its compute time is that of the real architectures with random weights (codecs/generative/timing.py,
kept under "compute_time_real_architectures"), and its pixel quality is the proxy a caption allows: a
caption carries no layout, so its PSNR / SSIM / MS-SSIM are those of a *different* held-out image of the set
(the mean over ordered pairs), marked "quality_source": "proxy". With --weights-dir they are measured.
A weights folder holding lpips/ and clip/ (codecs/perceptual.py) adds LPIPS and CLIP image similarity to every
row measured.
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

import numpy as np

from sagin_hil.codecs.base import Budget
from sagin_hil.codecs.modes import MODE_TABLE_PATH, MODES, ModeSpec
from sagin_hil.codecs.perceptual import learned_scores, load_present
from sagin_hil.codecs.profile import PROFILE_BPP_GRID, PROFILE_SNR_GRID_DB, build_image_profiles
from sagin_hil.phy.theory import awgn

__all__ = ["BPP_GRID", "JSCC_SNR_GRID_DB", "build_mode_table", "measure_jscc", "measure_j2k_rate_quality"]

JSCC_SNR_GRID_DB = PROFILE_SNR_GRID_DB  # the per-image analog curves share the mean curve's grid
BPP_GRID = PROFILE_BPP_GRID  # the per-image profiles share the mean curve's grid
MODE1_BPP = 1.0  # the Mode 1 operating point reported in the mode table (the controller may pick any rate)


def _eval_images(n: int, size: int) -> list[tuple[str, np.ndarray]]:
    from sagin_hil.codecs.images import load_images

    return load_images(n=n, size=size, split="eval")


def _measure(codec: Any, imgs: list[tuple[str, np.ndarray]], budget: Budget | None,
             channel: Any = None, scorers: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encode, (pass analog symbols through `channel`), decode and score each image (also by LPIPS and
    CLIP image similarity when `scorers` has them)."""
    from sagin_hil.codecs.metrics import ms_ssim, psnr, ssim

    bits, ps, ss, ms, te, td, n_sym, meta, learned = [], [], [], [], [], [], 0, {}, []
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
        meta = pay.metadata
        ps.append(psnr(img, rec))
        ss.append(ssim(img, rec))
        if min(img.shape[:2]) > 160:  # MS-SSIM's five scales need more than 160 px
            ms.append(ms_ssim(img, rec))
        learned.append(learned_scores(scorers or {}, img, rec))
    parts = {k: int(meta[k]) for k in ("caption_bits", "index_bits") if k in meta}
    return {"bits": int(np.median(bits)), **parts, "symbols": int(n_sym), "psnr_db": float(np.mean(ps)),
            "ssim": float(np.mean(ss)), **({"ms_ssim": float(np.mean(ms))} if ms else {}),
            **{k: float(np.mean([r[k] for r in learned])) for k in (learned[0] if learned else ())},
            "encode_time_s": float(np.median(te)), "decode_time_s": float(np.median(td))}


def measure_j2k_rate_quality(n_images: int = 8, size: int = 256, bpp_grid: tuple[float, ...] = BPP_GRID,
                             scorers: dict[str, Any] | None = None) -> dict[str, Any]:
    """JPEG 2000 mean PSNR / SSIM and median codec times at each bits-per-pixel budget on held-out images.

    Output: {"bpp", "psnr_db", "ssim", "ms_ssim", "encode_time_s", "decode_time_s"} (lists over the grid;
    "lpips" / "clip_i" too when `scorers` has them), "images", "size".
    The payload header is counted in the bits.
    """
    from sagin_hil.codecs.registry import get_codec

    codec, imgs = get_codec("jpeg2000"), _eval_images(n_images, size)
    keys = ("psnr_db", "ssim", "ms_ssim", "lpips", "clip_i", "encode_time_s", "decode_time_s")
    rows: dict[str, list[float]] = {"bpp": [], **{k: [] for k in keys}}
    for bpp in bpp_grid:
        m = _measure(codec, imgs, Budget(bits=int(bpp * size * size)), scorers=scorers)
        rows["bpp"].append(bpp)
        for k in keys:
            if k in m:
                rows[k].append(m[k])
    rows = {k: v for k, v in rows.items() if v}  # MS-SSIM needs > 160 px, LPIPS / CLIP their weights
    return {**rows, "images": [n for n, _ in imgs], "size": size}


def measure_jscc(codec_name: str, imgs: list[tuple[str, np.ndarray]], snr_grid_db: tuple[float, ...] = JSCC_SNR_GRID_DB,
                 seed: int = 0, scorers: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean PSNR / SSIM of a deep JSCC codec over complex AWGN at each SNR (encoder and decoder told the true
    SNR), its channel symbols per image, the bits of its digital side information, and its median encode /
    decode times."""
    from sagin_hil.codecs.registry import get_codec

    codec, rng = get_codec(codec_name), np.random.default_rng(seed)
    per_snr = [_measure(codec, imgs, Budget(snr_db=snr), lambda s, snr=snr: awgn(s, snr, rng), scorers)
               for snr in snr_grid_db]
    te = float(np.median([m["encode_time_s"] for m in per_snr]))
    td = float(np.median([m["decode_time_s"] for m in per_snr]))
    return {
        "codec": codec_name, "ratio": codec_name.split("-", 1)[1], "symbols": per_snr[0]["symbols"],
        "bits": per_snr[0]["bits"],  # the digital side information (header, shape, SNR); the image is `symbols`
        "snr_db": list(snr_grid_db), "psnr_db": [m["psnr_db"] for m in per_snr], "ssim": [m["ssim"] for m in per_snr],
        **{k: [m[k] for m in per_snr] for k in ("ms_ssim", "lpips", "clip_i") if k in per_snr[0]},
        "encode_time_s": te, "decode_time_s": td, "compute_time_s": te + td,
    }


def _measure_mode(spec: ModeSpec, imgs: list[tuple[str, np.ndarray]], size: int,
                  weights_dir: str | None = None, device: str = "auto",
                  scorers: dict[str, Any] | None = None) -> dict[str, Any]:
    from sagin_hil.codecs.registry import get_codec

    if spec.analog:
        return measure_jscc(spec.codec, imgs, scorers=scorers)
    budget = spec.budget(MODE1_BPP, size * size)
    kwargs = {"weights_dir": weights_dir, "device": device} if spec.user_weights else {}
    m = _measure(get_codec(spec.codec, **kwargs), imgs, budget, scorers=scorers)
    row = {"codec": spec.codec, **{k: v for k, v in m.items() if k != "symbols"},
           "compute_time_s": m["encode_time_s"] + m["decode_time_s"]}
    return {**row, "bpp": MODE1_BPP} if spec.rate_adaptive else row


def _unrelated_image_quality(imgs: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    """Mean PSNR / SSIM / MS-SSIM of each held-out image against every other one (ordered pairs)."""
    from sagin_hil.codecs.metrics import ms_ssim, psnr, ssim

    pairs = [(a, b) for i, (_, a) in enumerate(imgs) for j, (_, b) in enumerate(imgs) if i != j]
    return {"psnr_db": float(np.mean([psnr(a, b) for a, b in pairs])),
            "ssim": float(np.mean([ssim(a, b) for a, b in pairs])),
            "ms_ssim": float(np.mean([ms_ssim(a, b) for a, b in pairs]))}


def _caption_mode_row(spec: ModeSpec, imgs: list[tuple[str, np.ndarray]], timing: dict[str, Any] | None) -> dict[str, Any]:
    """Mode 2 without the user's weights: exact bits, real-architecture times, proxy quality (module doc)."""
    from sagin_hil.codecs.generative.sd import CAPTION_BYTES, CaptionCodec

    if timing is None:
        raise ValueError("mode2's compute time comes from the real architectures: run `sagin-hil train modes "
                         "--real-times` once (about 10 min on 2 CPU cores)")
    enc, dec = timing["mode2_encode_idle_s"], timing["mode2_decode_20_steps_idle_s"]
    return {"codec": spec.codec, "bits": CaptionCodec.n_bits(), "caption_bits": 8 * CAPTION_BYTES, "index_bits": 0,
            **_unrelated_image_quality(imgs), "quality_source": "proxy: a different held-out image (no weights given)",
            "encode_time_s": enc, "decode_time_s": dec, "compute_time_s": enc + dec,
            "compute_time_source": f"BLIP base + SD 2 (random weights), 20 DDIM steps, {timing['device']}: CPU "
                                   f"seconds / {timing['threads']} threads (idle cores); wall at load "
                                   f"{timing['load_average_1min']:.0f} in compute_time_real_architectures"}


def build_mode_table(n_images: int = 8, size: int = 256, write: bool = True, vq: bool = True,
                     jscc: bool = True, modes: list[str] | None = None, weights_dir: str | None = None,
                     device: str = "auto", real_times: bool = False, threads: int = 2,
                     timing: dict[str, Any] | None = None, j2k_curve: bool = True) -> dict[str, Any]:
    """Measure `modes` (default: every registered mode) and the JPEG 2000 rate-quality curve into the stored table.

    Rows of modes not measured (not named, or their weights missing) are kept as stored. Modes 3_x need the
    trained VQ and diffusion weights (`sagin-hil train vq`, `train generative --offline`), JSCC modes the JSCC
    weights; vq=False / jscc=False leave those out. real_times: measure the real architectures' compute
    times (codecs/generative/timing.py) instead of keeping the stored ones (`timing`: such a measurement).
    j2k_curve=False keeps the stored JPEG 2000 curve (and its timings) when it was measured at this size, so
    adding one mode's row changes nothing else that the controllers read.
    With lpips/ and clip/ in `weights_dir` (codecs/perceptual.py) every measured row and the JPEG 2000 curve
    gain "lpips" and "clip_i" (CLIP image similarity to the original, 0-100). Writes codecs/weights/mode_table.json
    when `write`, and beside it the same images' per-image quality profiles (codecs/profile.py).
    """
    imgs = _eval_images(n_images, size)
    old = json.loads(MODE_TABLE_PATH.read_text()) if MODE_TABLE_PATH.exists() else {}
    timing = timing or old.get("compute_time_real_architectures")
    if real_times:
        from sagin_hil.codecs.generative.timing import measure_real_compute_times

        timing = measure_real_compute_times(threads)
    scorers = load_present(weights_dir, device)
    rows = dict(old.get("modes", {})) if old.get("image_size", size) == size else {}
    for name in modes or MODES.names():
        spec = MODES.get(name)
        if (spec.table_key.startswith("3_") and not vq) or (spec.analog and not jscc):
            continue
        if spec.missing_weights(weights_dir):
            if spec.codec == "caption-t2i":
                rows[spec.table_key] = _caption_mode_row(spec, imgs, timing)
            continue
        rows[spec.table_key] = _measure_mode(spec, imgs, size, weights_dir, device, scorers)
        if spec.trained_files and not spec.opted_in(weights_dir):  # what the row was measured with
            rows[spec.table_key]["weights_sha256"] = spec.weights_digests()
    table = {
        **old, "image_size": size, "images": [n for n, _ in imgs], "machine": platform.processor() or platform.machine(),
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modes": rows,
        "j2k_rate_quality": old["j2k_rate_quality"] if not j2k_curve and old.get("image_size") == size
        and "j2k_rate_quality" in old else measure_j2k_rate_quality(n_images, size, scorers=scorers),
    }
    if timing is not None:
        table["compute_time_real_architectures"] = timing
    if write:
        MODE_TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
        MODE_TABLE_PATH.write_text(json.dumps(table, indent=1))
        build_image_profiles(n_images, size, write=True)
    return table
