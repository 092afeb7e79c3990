"""Per-image quality profiles: what each mode would deliver for *this* image, measured at the transmitter.

The mode table holds mean quality over held-out images, but images differ by up to 10 dB at one JPEG 2000
rate (a smooth sky against a textured scene). The transmitter holds the image, so it can measure the truth:
JPEG 2000 at every budget of the rate grid and each fixed-size digital mode (VQ) once, decoded locally, as
the receiver would decode an error-free copy. Controllers and the link abstraction then predict quality per
image instead of per mean image. Analog modes (deep JSCC) get the image's own PSNR-vs-SNR curve: the image
sent through the codec over complex AWGN at each SNR of PROFILE_SNR_GRID_DB (the mode table's grid); the
channel is not known in advance, but the image is. Images differ less through the JSCC than through JPEG 2000
(24.5-29.5 dB over the bench's six at 5 dB and 1/12, where the JPEG 2000 bound spans 25-35.5 dB), but enough
to change which mode wins.

`measure_quality_profile` measures one image (cached by content; the package's own images at 256 px are
measured once and stored, so a run of them costs nothing); `image_profiles` returns the profiles of the
held-out images stored in codecs/weights/image_profiles.json (`sagin-hil train modes` writes them), the pool
the SAGIN environment draws its tasks' images from.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sagin_hil.codecs.base import Budget
from sagin_hil.codecs.modes import MIN_MODE1_BITS, MODES, warn_if_stale
from sagin_hil.datatypes import QualityProfile

__all__ = ["PROFILE_BPP_GRID", "PROFILE_SNR_GRID_DB", "IMAGE_PROFILES_PATH", "measure_quality_profile",
           "image_profiles", "build_image_profiles"]

# The mode table's JPEG 2000 grid (calibration.quality.BPP_GRID), so profiles and the mean curve interpolate alike
PROFILE_BPP_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
# The mode table's SNR grid of the analog modes (calibration.quality.JSCC_SNR_GRID_DB)
PROFILE_SNR_GRID_DB = (-4.0, -2.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0)
ANALOG_NOISE_DRAWS = 2  # noise draws per SNR point, averaged
IMAGE_PROFILES_PATH = Path(__file__).parent / "weights" / "image_profiles.json"
_CACHE: dict[tuple, QualityProfile] = {}
_STORED: dict[str, dict] | None = None  # sha1 of an image's bytes -> its stored profile (every mode)


def _image_key(img: np.ndarray) -> str:
    return hashlib.sha1(img.tobytes() + str(img.shape).encode()).hexdigest()


def _stored(key: str, bpp_grid, fixed: list[str], analog: list[str] | tuple = ()) -> QualityProfile | None:
    """The stored profile of the image with this key, if it was measured on this grid for these modes."""
    global _STORED
    if _STORED is None:
        try:
            data = json.loads(IMAGE_PROFILES_PATH.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        _warn_if_stale(data, IMAGE_PROFILES_PATH)
        _STORED = data.get("by_content", {})
    d = _STORED.get(key)
    if d is None or tuple(d["bpp"]) != tuple(bpp_grid) or not set(fixed) <= set(d.get("mode_psnr_db", {})) \
            or not set(analog) <= set(d.get("analog_psnr_db", {})):
        return None
    return QualityProfile(tuple(d["bpp"]), tuple(d["psnr_db"]), {m: d["mode_psnr_db"][m] for m in fixed},
                          tuple(d.get("snr_db", ())), {m: d["analog_psnr_db"][m] for m in analog})


def _fixed_modes(modes) -> list[str]:
    """The fixed-size digital modes among `modes` (those a profile measures besides JPEG 2000)."""
    out = []
    for name in modes:
        spec = MODES.get(name)
        if not spec.analog and not spec.rate_adaptive:
            out.append(name)
    return out


def _analog_curve(codec, img: np.ndarray, content: str) -> list[float]:
    """The image's PSNR through `codec` over complex AWGN at each SNR of PROFILE_SNR_GRID_DB (encoder and
    decoder told the SNR, as the mode table measures), ANALOG_NOISE_DRAWS draws each, seeded by the image."""
    import torch

    from sagin_hil.codecs.jscc import awgn_symbols
    from sagin_hil.codecs.metrics import psnr

    gen = torch.Generator().manual_seed(int(content[:8], 16))
    curve = []
    for snr in PROFILE_SNR_GRID_DB:
        pay = codec.encode(img, Budget(snr_db=snr))
        curve.append(float(np.mean([psnr(img, codec.decode(pay.data, symbols=awgn_symbols(pay.symbols, snr, gen),
                                                           snr_db=snr)) for _ in range(ANALOG_NOISE_DRAWS)])))
    return curve


def measure_quality_profile(image: np.ndarray, modes=("mode1",), bpp_grid=PROFILE_BPP_GRID) -> QualityProfile:
    """The QualityProfile of `image` (uint8 HxW[x3]): JPEG 2000 PSNR at each bpp of `bpp_grid` (budgets below
    MIN_MODE1_BITS are measured at that floor, as the runner would send them), the PSNR of each fixed-size
    digital mode in `modes` and the PSNR-vs-SNR curve of each analog mode in `modes` whose codec can be loaded
    (one whose weights are missing is left out, and the controllers use its table mean). Cached by the image's
    bytes, so repeated images cost nothing."""
    from sagin_hil.codecs.metrics import psnr
    from sagin_hil.codecs.registry import get_codec

    img = np.ascontiguousarray(image)
    fixed = _fixed_modes(modes)
    analog = [m for m in modes if MODES.get(m).analog]
    content = _image_key(img)
    key = (content, tuple(bpp_grid), tuple(fixed), tuple(analog))
    if key in _CACHE:
        return _CACHE[key]
    stored = _stored(content, bpp_grid, fixed, analog)
    if stored is not None:
        _CACHE[key] = stored
        return stored
    n_pixels = img.shape[0] * img.shape[1]
    j2k = get_codec("jpeg2000")
    curve = []
    for bpp in bpp_grid:
        pay = j2k.encode(img, Budget(bits=max(int(bpp * n_pixels), MIN_MODE1_BITS)))
        curve.append(float(psnr(img, j2k.decode(pay.data))))
    mode_psnr = {}
    for name in fixed:
        try:
            codec = get_codec(MODES.get(name).codec)
            pay = codec.encode(img, Budget())
        except (FileNotFoundError, ValueError, ImportError):  # weights missing or the image too small for it
            continue
        mode_psnr[name] = float(psnr(img, codec.decode(pay.data)))
    analog_psnr = {}
    for name in analog:
        try:
            analog_psnr[name] = _analog_curve(get_codec(MODES.get(name).codec), img, content)
        except (FileNotFoundError, ValueError, ImportError):  # weights missing or the image too small for it
            continue
    profile = QualityProfile(tuple(bpp_grid), tuple(curve), mode_psnr,
                             PROFILE_SNR_GRID_DB if analog_psnr else (), analog_psnr)
    _CACHE[key] = profile
    return profile


def build_image_profiles(n_images: int = 8, size: int = 256, write: bool = True) -> dict[str, Any]:
    """Profiles (every mode of MODES) of the held-out images at `size`, the environment's pool, and of
    every image the package ships at `size` by content (what runs of the shipped images look up); written
    to IMAGE_PROFILES_PATH when `write`. Output: {"size", "measured_utc", "images": {name: profile dict},
    "by_content": {sha1: profile dict}}."""
    from sagin_hil.codecs.images import image_names, load_images

    global _STORED
    _STORED = {}  # measure afresh, not from the store being rebuilt
    modes = MODES.names()
    held_out = load_images(n=n_images, size=size, split="eval")
    shipped = load_images(n=len(image_names("run")), size=size, split="run") + held_out
    out = {"size": size, "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "weights_sha256": {m: MODES.get(m).weights_digests() for m in modes if MODES.get(m).trained_files},
           "images": {name: measure_quality_profile(img, modes).to_dict() for name, img in held_out},
           "by_content": {_image_key(np.ascontiguousarray(img)): measure_quality_profile(img, modes).to_dict()
                          for _, img in shipped}}
    _STORED = None
    if write:
        IMAGE_PROFILES_PATH.parent.mkdir(parents=True, exist_ok=True)
        IMAGE_PROFILES_PATH.write_text(json.dumps(out, indent=1))
    return out


def image_profiles(path: str | Path | None = None) -> dict[str, QualityProfile]:
    """Image name -> QualityProfile of the stored held-out profiles; regenerate them with `sagin-hil train modes`."""
    p = Path(path) if path is not None else IMAGE_PROFILES_PATH
    if not p.exists():
        raise FileNotFoundError(f"no image profiles at {p}; create them with `sagin-hil train modes`")
    data = json.loads(p.read_text())
    _warn_if_stale(data, p)
    return {name: QualityProfile.from_dict(d) for name, d in data["images"].items()}


def _warn_if_stale(data: dict[str, Any], path: Path) -> None:
    """Warn when the trained weights the profiles were measured with (`weights_sha256`) were replaced."""
    stale = [m for m, d in data.get("weights_sha256", {}).items() if m in MODES and MODES.get(m).weights_digests() != d]
    warn_if_stale(f"the image profiles {path}", stale, "sagin-hil train modes")
