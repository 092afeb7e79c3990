"""The image set: photographs shipped inside installed packages (no downloads), split for training and evaluation.

Sources: scikit-image (skimage/data/*.png|jpg), matplotlib (sample_data/grace_hopper.jpg), PyWavelets
(pywt/data/aero.npz, ascent.npz), glymur (data/nemo.jp2) and scikit-learn (datasets/images/china.jpg,
flower.jpg). Grey images are repeated to 3 channels.

Splits
------
- ``"eval"``: held out from every training run (JSCC, VQ) and used by the benchmarks and rate-quality tables.
- ``"train"``: the remaining images; trainers cut random patches from them at full resolution.
- ``"train+colour"``: "train" and two colour photographs (:data:`COLOUR_NAMES`, one with a blue sky), for the
  JSCC: seven of the twelve train images are grey (the VQ codecs were trained on "train" alone).
- ``"run"``: the images a flowgraph carries by default (astronaut, coffee, chelsea, rocket, grace_hopper,
  aero, nemo, ...); it mixes both groups, see :data:`EVAL_NAMES` for which are unseen by the trained codecs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["load_images", "load_image_files", "image_files_in", "load_full", "image_names", "EVAL_NAMES", "TRAIN_NAMES",
           "COLOUR_NAMES", "RUN_NAMES"]

EVAL_NAMES: tuple[str, ...] = (
    "chelsea", "rocket", "grace_hopper", "aero", "coffee", "motorcycle_right", "ascent", "immunohistochemistry",
)
TRAIN_NAMES: tuple[str, ...] = (
    "astronaut", "nemo", "motorcycle_left", "retina", "hubble_deep_field", "camera", "grass", "gravel",
    "brick", "moon", "coins", "page",
)
COLOUR_NAMES: tuple[str, ...] = ("china", "flower")
RUN_NAMES: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "grace_hopper", "aero", "nemo", "motorcycle_left",
    "motorcycle_right", "ascent", "immunohistochemistry", "retina", "hubble_deep_field", "camera",
)
_SPLITS = {"eval": EVAL_NAMES, "train": TRAIN_NAMES, "train+colour": TRAIN_NAMES + COLOUR_NAMES, "run": RUN_NAMES}


def _skimage_file(name: str) -> Path:
    import skimage

    base = Path(skimage.__file__).parent / "data"
    for candidate in (f"{name}.png", f"{name}.jpg"):
        if (base / candidate).exists():
            return base / candidate
    raise FileNotFoundError(f"scikit-image does not ship {name!r} in {base}")


@functools.lru_cache(maxsize=32)
def _load_raw(name: str) -> np.ndarray:
    """Full-resolution uint8 HxWx3 image `name`, read from the installed package that ships it."""
    if name == "grace_hopper":
        import matplotlib.cbook
        from skimage.io import imread

        img = imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    elif name in ("aero", "ascent"):
        import pywt.data

        img = getattr(pywt.data, name)()
    elif name in COLOUR_NAMES:
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    elif name == "nemo":
        import glymur

        img = glymur.Jp2k(glymur.data.nemo())[:]
    elif name == "immunohistochemistry":
        from skimage.io import imread

        img = imread(_skimage_file("ihc"))
    else:
        from skimage.io import imread

        img = imread(_skimage_file(name))
    img = np.asarray(img)
    if img.dtype != np.uint8:  # pywt ships float/uint images in 0..255
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]  # drop alpha
    return np.ascontiguousarray(img)


def image_names(split: str = "run") -> tuple[str, ...]:
    """Names of the images in `split` ("run", "train", "train+colour" or "eval"), in their fixed order."""
    try:
        return _SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown image split {split!r}; choose one of: {', '.join(_SPLITS)}") from None


def load_full(split: str = "train") -> list[tuple[str, np.ndarray]]:
    """All images of `split` at their native resolution, as (name, uint8 HxWx3)."""
    return [(n, _load_raw(n)) for n in image_names(split)]


def center_square(img: np.ndarray, size: int) -> np.ndarray:
    """Deterministic centre crop to a square, then an anti-aliased resize to size x size (uint8)."""
    from skimage.transform import resize

    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = img[top : top + s, left : left + s]
    if s == size:
        return crop.copy()
    out = resize(crop, (size, size), order=1, anti_aliasing=s > size, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def load_images(n: int = 8, size: int = 256, split: str = "run") -> list[tuple[str, np.ndarray]]:
    """The first `n` images of `split`, centre-cropped and resized to size x size.

    Parameters
    ----------
    n : int
        Number of images, 1 <= n <= len(image_names(split)).
    size : int
        Side in pixels (>= 16).
    split : str
        "run", "train" or "eval" (held out from codec training).

    Output
    ------
    list of (name, uint8 array size x size x 3)
    """
    names = image_names(split)
    if not 1 <= n <= len(names):
        raise ValueError(f"n={n} images requested from split {split!r}, which has {len(names)}; use 1..{len(names)}")
    if size < 16:
        raise ValueError(f"size={size} px is too small; use size >= 16")
    return [(name, center_square(_load_raw(name), size)) for name in names[:n]]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".jp2", ".j2k", ".pgm", ".ppm")


def image_files_in(folder: str | Path) -> list[Path]:
    """The image files of `folder` (by suffix, sorted by name); an error names a folder with none."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise ValueError(f"images.dir = {str(folder)!r} is not a folder; give a folder of image files")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"images.dir = {str(folder)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_image_files(paths: list[str | Path], size: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Your own images as (file stem, uint8 HxW grey or HxWx3 colour): any size, centre-cropped and resized to
    size x size when `size` is given. An unreadable or unsupported file is named in a ValueError."""
    out = []
    for p in map(Path, paths):
        try:
            if p.suffix.lower() in (".jp2", ".j2k"):
                import glymur

                img = np.asarray(glymur.Jp2k(str(p))[:])
            else:
                from skimage.io import imread

                img = np.asarray(imread(str(p)))
        except Exception as exc:  # every reader's failure reads differently: name the file and the reason
            raise ValueError(f"image {str(p)!r} cannot be read ({type(exc).__name__}: {exc}); give a PNG, JPEG, "
                             "TIFF, BMP or JPEG 2000 file") from None
        if img.ndim == 3 and img.shape[2] in (2, 4):  # drop alpha
            img = img[:, :, : 1 if img.shape[2] == 2 else 3]
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim not in (2, 3) or min(img.shape[:2]) < 8:
            raise ValueError(f"image {str(p)!r} has shape {img.shape}; need an H x W (grey) or H x W x 3 image of "
                             "at least 8 x 8 pixels")
        if img.dtype != np.uint8:  # 16-bit or float: scale to 8 bits
            hi = 65535.0 if img.dtype == np.uint16 else (255.0 if img.max() > 1.0 else 1.0)
            img = np.clip(np.rint(img.astype(float) * 255.0 / hi), 0, 255).astype(np.uint8)
        out.append((p.stem, center_square(img, size) if size else np.ascontiguousarray(img)))
    return out
